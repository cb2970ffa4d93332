// The public HTTP API, as the page uses it: JSON in and out, the page envelope, the bearer token, and errors
// turned into messages a person can act on.

import { currentSession, dropToken, refresh } from "./auth.js";

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}
export class ApiDown extends Error {}
export class SignInRequired extends Error {}

let config = { api_base: "", auth: null };
let onSignInNeeded = async () => {
  throw new SignInRequired("Sign in to continue.");
};

export function configure(pageConfig, signInHandler) {
  config = pageConfig;
  onSignInNeeded = signInHandler;
}

export function authConfig() {
  return config.auth;
}

function url(path, params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") query.set(key, String(value));
  }
  const text = query.toString();
  return `${config.api_base}${path}${text ? `?${text}` : ""}`;
}

function describe(status, body) {
  const errors = Array.isArray(body?.errors) ? body.errors : [];
  const fields = errors
    .map((e) => [e.field, e.message].filter(Boolean).join(": "))
    .filter(Boolean)
    .join("; ");
  const message = body?.message || body?.detail || `HTTP ${status}`;
  return fields ? `${message} (${fields})` : message;
}

async function send(method, path, { params, body } = {}, retried = false) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const session = currentSession();
  if (session) headers.Authorization = `Bearer ${session.token}`;
  let response;
  try {
    response = await fetch(url(path, params), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiDown(`The closecast API is not answering (${location.origin}${config.api_base || ""}).`);
  }
  if (response.status === 401 && !retried) {
    // expired or missing token: try the refresh token, then ask the person to sign in, then retry once
    dropToken();
    const fresh = config.auth ? await refresh(config.auth) : null;
    if (!fresh) await onSignInNeeded(session ? "Your session has expired. Sign in again." : null);
    return send(method, path, { params, body }, true);
  }
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  if (response.status === 401) throw new SignInRequired(describe(401, parsed));
  if (response.status === 403) {
    throw new ApiError(403, `You are signed in but not allowed to do this: ${describe(403, parsed)}`, parsed);
  }
  if (response.status >= 500) {
    throw new ApiDown(`The API failed (${response.status}): ${describe(response.status, parsed)}`);
  }
  if (!response.ok) throw new ApiError(response.status, describe(response.status, parsed), parsed);
  return parsed;
}

export const get = (path, params) => send("GET", path, { params });
export const post = (path, body) => send("POST", path, { body });

// Every row of a list endpoint (page by page, page_size 1000).
export async function getAll(path, params = {}, limit = 50_000) {
  const rows = [];
  for (let page = 1; ; page += 1) {
    const body = await get(path, { ...params, page, page_size: 1000 });
    rows.push(...body.data);
    if (page >= body.total_pages || rows.length >= limit || body.data.length === 0) return rows;
  }
}
