// The wall shows the first rows of its long lists (ops_wall.css); this adds a last row saying how
// many more there are, so a capped list never hides that more is going on than it shows.
import { addStrings, t } from "./i18n.js";

addStrings({
  wall_more: ["還有 {n} 筆（見筆電版面）", "{n} more (laptop layout)"],
});

// [list, rows shown on the wall]: keep in step with the nth-child caps in ops_wall.css
const CAPPED = [["#alerts-list", 3], ["#outages", 4], ["#incidents", 4]];

export function markHiddenRows(root = document) {
  const wall = document.body.classList.contains("wall");
  for (const [selector, shown] of CAPPED) {
    const list = root.querySelector(selector);
    if (!list) continue;
    const rows = list.querySelectorAll(":scope > li:not(.more)").length;
    const hidden = wall ? rows - shown : 0;
    let more = list.querySelector(":scope > li.more");
    if (hidden <= 0) {
      if (more) more.remove();
      continue;
    }
    if (!more) {
      more = document.createElement("li");
      more.className = "more";
      list.append(more);
    } else if (more !== list.lastElementChild) {
      list.append(more); // rows were added after it
    }
    more.textContent = t("wall_more").replace("{n}", String(hidden));
  }
}

export function watchCappedLists(root = document) {
  const observer = new MutationObserver(() => markHiddenRows(root));
  for (const [selector] of CAPPED) {
    const list = root.querySelector(selector);
    if (list) observer.observe(list, { childList: true });
  }
  markHiddenRows(root);
}
