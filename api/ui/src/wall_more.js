// The wall shows the first rows of its long lists, as many as fit their block (at most a cap each),
// and ends a cut list with a row saying how many more there are: a list never hides that more is
// going on than it shows, and never runs out of its block whatever the rows' lengths.
import { addStrings, t } from "./i18n.js";

addStrings({
  wall_more: ["還有 {n} 筆（見筆電版面）", "{n} more (laptop layout)"],
});

// [list, most rows shown on the wall], in page order: an earlier list in a block leaves the
// remaining height to the next one. One alert: the header counts them, and a station's outage
// alert is also its outage row, which matters more here
const CAPPED = [["#alerts-list", 1], ["#outages", 3], ["#incidents", 4]];

function moreRow(list, hidden) {
  let more = list.querySelector(":scope > li.more");
  if (hidden <= 0) {
    if (more) more.remove();
    return null;
  }
  if (!more) {
    more = document.createElement("li");
    more.className = "more";
  }
  if (more !== list.lastElementChild) list.append(more);
  more.textContent = t("wall_more").replace("{n}", String(hidden));
  return more;
}

function fit(list, cap, wall) {
  const rows = [...list.querySelectorAll(":scope > li:not(.more)")];
  rows.forEach((row) => row.classList.remove("wall-cut"));
  if (!wall) {
    moreRow(list, 0);
    return;
  }
  let shown = Math.min(cap, rows.length);
  rows.slice(shown).forEach((row) => row.classList.add("wall-cut"));
  let more = moreRow(list, rows.length - shown);
  const block = list.closest(".blk");
  if (!block) return;
  const limit = block.getBoundingClientRect().bottom - 2;
  const lastBottom = () => (more || rows[shown - 1]).getBoundingClientRect().bottom;
  while (shown > 0 && lastBottom() > limit) {
    shown -= 1;
    rows[shown].classList.add("wall-cut");
    more = moreRow(list, rows.length - shown);
  }
}

export function markHiddenRows(root = document) {
  const wall = document.body.classList.contains("wall");
  for (const [selector, cap] of CAPPED) {
    const list = root.querySelector(selector);
    if (list) fit(list, cap, wall);
  }
}

export function watchCappedLists(root = document) {
  const observer = new MutationObserver(() => markHiddenRows(root));
  for (const [selector] of CAPPED) {
    const list = root.querySelector(selector);
    if (list) observer.observe(list, { childList: true });
  }
  window.addEventListener("resize", () => markHiddenRows(root));
  if (document.fonts) document.fonts.ready.then(() => markHiddenRows(root));
  markHiddenRows(root);
}
