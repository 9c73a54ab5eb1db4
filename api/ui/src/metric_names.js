// The park's metrics as people read them, in both languages: every metric of the ingester's
// catalogue (ingest/_metrics_catalogue.py; tests/test_ops_page.py checks none is missing) and
// its SenML unit as printed (°C, µg/m³ rather than Cel, ug/m3).
import { currentLang } from "./i18n.js";

export const METRIC_NAMES = {
  pm1: ["PM1", "PM1"],
  pm2_5: ["PM2.5", "PM2.5"],
  pm10: ["PM10", "PM10"],
  o3: ["臭氧", "Ozone"],
  no2: ["二氧化氮", "Nitrogen dioxide"],
  co: ["一氧化碳", "Carbon monoxide"],
  co2: ["二氧化碳", "Carbon dioxide"],
  temperature: ["氣溫", "Temperature"],
  humidity: ["相對濕度", "Humidity"],
  pressure: ["氣壓", "Pressure"],
  wind_speed: ["風速", "Wind speed"],
  wind_gust: ["陣風", "Gust"],
  wind_direction: ["風向", "Wind direction"],
  rain: ["雨量", "Rain"],
  rain_rate: ["降雨強度", "Rain rate"],
  irradiance: ["日射量", "Irradiance"],
  noise_laeq: ["均能音量 Leq", "Noise Leq"],
  noise_lmax: ["最大音量 Lmax", "Noise Lmax"],
  power_active: ["實功率", "Active power"],
  power_reactive: ["虛功率", "Reactive power"],
  power: ["功率", "Power"],
  energy: ["累計電能", "Energy"],
  voltage: ["電壓", "Voltage"],
  current: ["電流", "Current"],
  power_factor: ["功率因數", "Power factor"],
  frequency: ["頻率", "Frequency"],
  module_temperature: ["模組溫度", "Module temperature"],
  charger_status: ["充電槍狀態", "Connector state"],
  plugged: ["已插槍", "Plugged in"],
  door_open: ["門開啟", "Door open"],
  intrusion: ["入侵警報", "Intrusion alarm"],
  intrusion_count: ["入侵次數", "Intrusions"],
  camera_online: ["攝影機連線", "Camera online"],
  battery: ["電量", "Battery"],
};

const UNITS = {
  Cel: "°C", "ug/m3": "µg/m³", "%RH": "%", "W/m2": "W/m²", deg: "°", dB: "dB(A)", count: "", "/": "",
};

export function metricName(metric) {
  const names = METRIC_NAMES[metric];
  return names ? names[currentLang() === "en" ? 1 : 0] : metric;
}

export function unitLabel(unit) {
  if (!unit) return "";
  return unit in UNITS ? UNITS[unit] : unit;
}
