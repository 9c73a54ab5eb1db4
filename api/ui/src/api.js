// Thin fetch helpers: same-origin only (the page's Content-Security-Policy allows nothing else).
export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : JSON.stringify(detail));
    this.status = status;
  }
}

async function parse(answer) {
  const text = await answer.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = text; }
  if (!answer.ok) throw new ApiError(answer.status, (body && (body.message || body.detail)) || answer.statusText);
  return body;
}

export async function getJson(path, params) {
  const url = new URL(path, location.origin);
  if (params) Object.entries(params).forEach(([k, v]) => v != null && url.searchParams.set(k, v));
  return parse(await fetch(url, { headers: { Accept: "application/json" } }));
}

export async function postJson(path, body, key) {
  const headers = { "Content-Type": "application/json", Accept: "application/json" };
  if (key) headers["X-API-Key"] = key;
  return parse(await fetch(path, { method: "POST", headers, body: JSON.stringify(body) }));
}
