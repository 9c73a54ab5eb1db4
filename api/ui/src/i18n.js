// Every visible string in both languages; `t(key)` reads the current one. Chinese first: the
// operations center's working language.
const STRINGS = {
  title: ["臺中市智慧營運中心 · 中都", "Taichung Operations Center · Zhongdu"],
  coverage: ["4G 人口涵蓋率（即時）", "4G population coverage (live)"],
  serving: ["服務中基地台", "Stations serving"],
  outages: ["中斷", "Outages"],
  updated: ["更新", "Updated"],
  indicators: ["計畫指標", "Plan indicators"],
  live: ["即時", "Live"],
  scenarios: ["情境規劃", "Scenarios"],
  year: ["年度", "Year"],
  id: ["編號", "ID"],
  indicator: ["指標", "Indicator"],
  target: ["目標", "Target"],
  actual: ["實績", "Actual"],
  attainment: ["達成率", "Attainment"],
  weight: ["權重", "Weight"],
  score: ["加權分數", "Weighted score"],
  fourG: ["4G 涵蓋率", "4G coverage"],
  chart4g: ["4G 涵蓋率：各準則模型推估、即時快照與目標", "4G coverage: modelled per criterion, live snapshots and targets"],
  criterion: ["涵蓋準則", "Criterion"],
  crit_outdoor: ["戶外", "Outdoor"],
  crit_indoor: ["室內", "Indoor"],
  crit_capacity: ["容量", "Capacity"],
  crit_indoor_every_major: ["室內・三大業者皆涵蓋", "Indoor, every major operator"],
  critNote_outdoor: [
    "戶外：人所在網格的室外訊號強度（RSRP）不低於 −110 dBm，任一業者即算。站址隨人口分布，數百站即涵蓋幾乎全市人口，故自 2014 年底起接近 100%，看不出目標差異。",
    "Outdoor: the signal (RSRP) outside, where people live, is at least −110 dBm from any operator. Sites follow the population, so a few hundred already reach almost everyone and it sits near 100 % from late 2014, whatever the target.",
  ],
  critNote_indoor: [
    "室內：路徑損耗加上 3GPP TR 38.901 建物穿透損耗（14–25 dB），任一業者涵蓋即算；多數人家中總有某家訊號，仍接近飽和。",
    "Indoor: the path loss plus 3GPP TR 38.901's building-entry loss (14–25 dB), any operator counting; someone's network reaches almost every home, so it stays near saturation.",
  ],
  critNote_capacity: [
    "容量：網格須由負載未滿的扇區服務（尖峰 5% 使用者活躍、每 20 MHz 200 人）；此預設參數下仍接近飽和，參數決定其意義。",
    "Capacity: a cell counts only if its serving sector's busy-hour load stays under capacity (5 % active, 200 users per 20 MHz); near saturation with these defaults, so the parameters decide what it says.",
  ],
  critNote_indoor_every_major: [
    "室內且中華電信、台灣大哥大、遠傳三家皆涵蓋：不論訂閱哪家主要業者都收得到；唯一落在 70–95% 目標區間而能分辨達標與否的準則。",
    "Indoor by each of CHT, TWM and FET: covered whichever major network one subscribes to; the one criterion whose level moves in the 70–95 % targets' range, so it tells met from missed.",
  ],
  belowAxis: ["低於縱軸", "Below the axis"],
  date: ["日期", "Date"],
  liveSnapshots: ["即時快照", "Live snapshots"],
  targets: ["年度目標", "Yearly targets"],
  outagesLive: ["基地台中斷（即時）", "Station outages (live)"],
  noOutages: ["目前沒有中斷", "No outages now"],
  alertsKpi: ["未確認警報", "Unacknowledged alerts"],
  alertsLive: ["警報（未解除）", "Alerts (not resolved)"],
  noAlerts: ["目前沒有警報", "No alerts now"],
  alertAcked: ["已確認", "acknowledged"],
  alertUnacked: ["未確認", "unacknowledged"],
  flapping: ["反覆觸發", "flapping"],
  sev_info: ["資訊", "Info"],
  sev_warning: ["警告", "Warning"],
  sev_critical: ["嚴重", "Critical"],
  ev_opened: ["新警報", "New alert"],
  ev_acknowledged: ["已確認", "Acknowledged"],
  ev_resolved: ["已解除", "Resolved"],
  ev_escalated: ["升級（逾時未確認）", "Escalated (unacknowledged)"],
  ev_flapping: ["反覆觸發", "Flapping"],
  ev_reopened: ["再次觸發", "Reopened"],
  parkDevices: ["園區設備", "Park devices"],
  dev_online: ["正常", "online"],
  dev_offline: ["離線", "offline"],
  dev_alert: ["警報", "alert"],
  dev_acked: ["警報已確認", "alert acknowledged"],
  kind: ["類型", "Kind"],
  metric: ["量測項目", "Metric"],
  latest: ["最新值", "Latest"],
  at: ["時間", "At"],
  noReadings: ["尚無資料", "No readings yet"],
  ackButton: ["確認", "Acknowledge"],
  ackBy: ["值班人員", "Operator on duty"],
  ackNeeds: ["請填寫值班人員與操作金鑰", "Enter your name and an operator key"],
  ackFailed: ["確認失敗", "Acknowledgement failed"],
  park: ["水湳智慧園區最新讀值", "Shuinan park: latest readings"],
  noPark: ["過去 1 小時沒有園區裝置回報", "No park device reported in the last hour"],
  noEvents: ["尚無事件：中斷、恢復與涵蓋率變化會列在這裡", "No events yet: outages, recoveries and coverage changes appear here"],
  ingester: ["資料接收健康度", "Ingester health"],
  msgRate: ["訊息/秒", "messages/s"],
  lag: ["延遲", "lag"],
  queue: ["佇列", "queue"],
  rejects: ["拒收", "rejected"],
  broker: ["MQTT 連線", "MQTT link"],
  unavailable: ["無法取得", "unavailable"],
  district: ["行政區", "District"],
  population: ["人口", "Population"],
  covered: ["涵蓋人口", "Covered people"],
  coveredCells: ["涵蓋網格", "covered cells"],
  share: ["涵蓋率", "Share"],
  planTarget: ["計畫目標", "Plan target"],
  cells: ["網格", "cells"],
  site: ["基地台", "Site"],
  sectors: ["扇區", "Sectors"],
  status: ["狀態", "Status"],
  load: ["負載 (PRB)", "Load (PRB)"],
  users: ["使用者", "Users"],
  notRegistered: ["未登錄於資料庫（僅配置）", "not in the registry (layout only)"],
  st_unknown: ["未回報", "no report"],
  st_up: ["正常", "up"],
  st_degraded: ["降級", "degraded"],
  st_down: ["中斷", "down"],
  st_silent: ["失聯", "silent"],
  legendShare: ["行政區涵蓋率", "District coverage"],
  legendRsrp: ["網格最佳 RSRP (dBm)", "Cell best RSRP (dBm)"],
  legendCovered: ["網格涵蓋", "Cell covered"],
  legendSites: ["基地台狀態", "Site status"],
  yes: ["是", "yes"],
  no: ["否", "no"],
  zoomForCells: ["放大或點選行政區以顯示網格", "Zoom in or click a district to see its cells"],
  tooManyCells: ["網格過多，請放大", "Too many cells here; zoom in"],
  apiKey: ["規劃者金鑰", "Planner key"],
  goal: ["目標", "Goal"],
  goalTarget: ["涵蓋率達到 (%)", "Reach share (%)"],
  goalBudget: ["最多站數", "At most N sites"],
  candidates: ["候選站址", "Candidates"],
  candidatesHint: ["取目前顯示網格中未涵蓋、人口最多者", "the uncovered, most populated cells on the map"],
  run: ["執行配置", "Run placement"],
  running: ["計算中…", "Computing…"],
  needCells: ["請先點選行政區或放大地圖，以載入網格", "Click a district or zoom in first, to load cells"],
  needKey: ["需要規劃者金鑰", "A planner key is needed"],
  noCandidates: ["目前網格皆已涵蓋，無候選站址", "Every cell shown is covered: no candidates"],
  picks: ["建議站址（依序）", "Proposed sites (in order)"],
  gain: ["增加人口", "People added"],
  shareAfter: ["累計涵蓋率", "Share after"],
  districtsAfter: ["各區涵蓋率（配置後）", "District shares after"],
  before: ["配置前", "before"],
  after: ["配置後", "after"],
  failed: ["失敗", "failed"],
  layout: ["版面", "Layout"],
  wall: ["牆面", "Wall"],
  laptop: ["筆電", "Laptop"],
  lang: ["EN", "中文"],
  events: ["事件", "Events"],
  coverageChange: ["涵蓋率變化", "coverage change"],
  connecting: ["連線中", "connecting"],
  streamOk: ["即時連線", "live"],
  streamLost: ["重新連線中", "reconnecting"],
  // the operations wall: its tab, the petition hotspots' legend, a year without targets
  opsTab: ["營運總覽", "Operations"],
  legendPetitions: ["陳情熱點", "Petition hotspots"],
  petHot: ["熱點（顯著偏高）", "hot (significantly high)"],
  petCold: ["冷點", "cold"],
  petFresh: ["新增", "new"],
  noTargetsYear: ["本年度無目標", "no targets for this year"],
  // indicator entry (indicator_form.js) and the score line
  enter: ["填報", "Enter"],
  milestones: ["年度工作項目（肆、七）", "The year's work items (plan section 4.7)"],
  noChecklist: ["計畫未列本年度工作項目", "The plan lists no work items for this year"],
  parts: ["各項辦理次數", "Times done, per part"],
  perYear: ["每年", "per year"],
  quotas: ["法定進用人數", "Statutory quotas (people)"],
  numerator: ["分子", "Numerator"],
  denominator: ["分母", "Denominator"],
  orPercent: ["或直接填百分比 (%)", "or the percentage (%)"],
  achieved: ["是否達成", "Achieved"],
  value: ["數值", "Value"],
  evidence: ["佐證資料（文號或網址）", "Evidence (document reference or URL)"],
  evidenceHint: ["例：府授研綜字第…號、https://…", "e.g. a document number or https://…"],
  note: ["備註", "Note"],
  save: ["儲存", "Save"],
  saveCorrection: ["儲存（更正現有數值）", "Save (corrects the current entry)"],
  close: ["關閉", "Close"],
  saving: ["儲存中…", "Saving…"],
  saved: ["已儲存", "Saved"],
  enteredBy: ["填報人", "Entered by"],
  enteredAt: ["填報時間", "Entered at"],
  noEntries: ["尚無填報紀錄", "No entries yet"],
  fromEngine: ["此指標由平台計算，不由人工填報：", "The platform computes this indicator; it is not keyed in:"],
  amended: ["目標已修正", "Target amended"],
  countermeasures: ["因應對策", "countermeasures"],
  freq_monthly: ["每月填報", "reported monthly"],
  freq_quarterly: ["每季填報", "reported quarterly"],
  freq_yearly: ["每年填報", "reported yearly"],
  review_draft: ["草稿", "draft"],
  review_self_assessed: ["機關自評", "self-assessed"],
  review_reviewed: ["研考會初核", "reviewed"],
  review_returned: ["退回", "returned"],
  review_approved: ["核定", "approved"],
  flag_behind: ["落後目標", "behind target"],
  flag_at_risk: ["趨勢預估落後", "projected to miss"],
  scoredOn: ["4G 指標評分準則", "4G indicator scored on"],
  recordedChoice: ["研考會設定", "the commission's setting"],
  viewingOther: ["目前檢視其他準則，僅供參考", "another criterion is shown, for reference only"],
  importCsv: ["匯入 CSV", "Import CSV"],
  exportCsv: ["匯出 CSV", "Export CSV"],
  reportPdf: ["年度報告 (PDF)", "Annual report (PDF)"],
  imported: ["已匯入", "imported"],
  unchanged: ["未變動", "unchanged"],
  line: ["第 {n} 行", "line {n}"],
  baseline: ["計畫所載基準值", "The plan's baseline"],
  reviewStep: ["年度評核流程", "Yearly cycle"],
  lockYear: ["鎖定本年度（評核完成）", "Lock this year (evaluated)"],
  locked: ["本年度已評核鎖定，不再接受填報", "This year is evaluated and locked: no more entries"],
};

// Strings of a feature module, kept with its code (the keys must not clash with the table above).
export function addStrings(table) {
  Object.entries(table).forEach(([k, v]) => { if (!(k in STRINGS)) STRINGS[k] = v; });
}

let lang = (new URLSearchParams(location.search).get("lang") || localStorage.getItem("zd-lang") || "zh") === "en" ? 1 : 0;

export function t(key) {
  const entry = STRINGS[key];
  return entry ? entry[lang] : key;
}

export function currentLang() {
  return lang ? "en" : "zh";
}

export function toggleLang() {
  lang = 1 - lang;
  localStorage.setItem("zd-lang", currentLang());
  document.documentElement.lang = lang ? "en" : "zh-Hant";
}

// Elements carrying data-i18n="key" get their text from the table.
export function applyStatic(root = document) {
  root.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  root.querySelectorAll("[data-i18n-placeholder]").forEach((el) => { el.placeholder = t(el.dataset.i18nPlaceholder); });
}

export function fmtPct(x, digits = 1) {
  return x == null || !Number.isFinite(x) ? "–" : `${(100 * x).toFixed(digits)}%`;
}

export function fmtInt(x) {
  return x == null || !Number.isFinite(x) ? "–" : Math.round(x).toLocaleString(lang ? "en-US" : "zh-TW");
}

export function fmtNum(x, digits = 2) {
  if (x == null || !Number.isFinite(x)) return "–";
  return Math.abs(x) >= 1000 ? fmtInt(x) : Number(x.toFixed(digits)).toString();
}

export function fmtTime(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return d.toLocaleTimeString(lang ? "en-GB" : "zh-TW", { hour12: false });
}
