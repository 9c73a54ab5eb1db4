#!/usr/bin/env bash
# System tools the tests drive, from Debian's packages: chromium (the operations page's browser
# tests; Playwright downloads no browser here), nats-server (the second broker implementation),
# openssl (a throwaway CA for the TLS tests) and fonts-noto-cjk (the page's Chinese in the browser
# tests' screenshots). `make test` runs this first: as root with apt-get it installs what is
# missing; otherwise it names what to install and the tests that need it fail with the same advice.
set -euo pipefail
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ] || missing+=(nats-server)
command -v openssl >/dev/null || missing+=(openssl)
# a CJK font for the indicators' annual report (WeasyPrint finds it through fontconfig)
fc-list 2>/dev/null | grep -qiE "wqy|noto sans cjk" || missing+=(fonts-wqy-microhei)
# ... and the text layout library WeasyPrint loads (chromium usually brings it along)
ldconfig -p 2>/dev/null | grep -q "libpangoft2-1.0" || missing+=(libpangoft2-1.0-0)
# the page's Chinese in the screenshots: Noto Sans CJK (style.css names it first among CJK fonts)
[ -e /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc ] || missing+=(fonts-noto-cjk)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "installing the tests' system tools: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "warning: the tests need Debian's ${missing[*]} (sudo apt-get install ${missing[*]})" >&2
fi
