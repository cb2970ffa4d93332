// Sign-in through the Cognito user pool's own JSON API (USER_PASSWORD_AUTH), from the browser.
// The ID token lives in sessionStorage (gone when the tab closes); the refresh token only in memory.

const STORE = "closecast.session";
let refreshToken = null;

export class SignInError extends Error {}

export function currentSession() {
  try {
    const raw = sessionStorage.getItem(STORE);
    if (!raw) return null;
    const session = JSON.parse(raw);
    if (!session.token || Date.now() > session.expires - 30_000) return null;
    return session;
  } catch {
    return null;
  }
}

// The token was refused (expired or revoked): forget it, keep the refresh token.
export function dropToken() {
  sessionStorage.removeItem(STORE);
}

export function signOut() {
  sessionStorage.removeItem(STORE);
  refreshToken = null;
}

function claims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part));
  } catch {
    return {};
  }
}

async function initiateAuth(auth, flow, parameters) {
  let response;
  try {
    response = await fetch(auth.endpoint, {
      method: "POST",
      headers: {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": "AWSCognitoIdentityProviderService.InitiateAuth",
      },
      body: JSON.stringify({ AuthFlow: flow, ClientId: auth.client_id, AuthParameters: parameters }),
    });
  } catch {
    throw new SignInError(`The sign-in service (${auth.endpoint}) is not answering.`);
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const type = String(body.__type || "").split("#").pop();
    if (type === "NotAuthorizedException" || type === "UserNotFoundException") {
      throw new SignInError("Wrong user name or password.");
    }
    throw new SignInError(body.message || body.Message || `Sign-in failed (${response.status}).`);
  }
  if (body.ChallengeName) {
    throw new SignInError(
      body.ChallengeName === "NEW_PASSWORD_REQUIRED"
        ? "This account must set a new password first (ask an administrator)."
        : `Sign-in needs a step this page does not support: ${body.ChallengeName}.`,
    );
  }
  return body.AuthenticationResult;
}

function keep(result, previousRefresh) {
  const token = result.IdToken;
  const who = claims(token);
  const session = {
    token,
    user: who.email || who["cognito:username"] || who.username || "signed in",
    groups: who["cognito:groups"] || [],
    expires: Date.now() + (result.ExpiresIn || 3600) * 1000,
  };
  sessionStorage.setItem(STORE, JSON.stringify(session));
  refreshToken = result.RefreshToken || previousRefresh;
  return session;
}

export async function signIn(auth, username, password) {
  if (!username || !password) throw new SignInError("Enter your user name and password.");
  const result = await initiateAuth(auth, "USER_PASSWORD_AUTH", { USERNAME: username, PASSWORD: password });
  return keep(result, null);
}

// A fresh token from the refresh token, or null when there is none (or it no longer works).
export async function refresh(auth) {
  if (!refreshToken) return null;
  try {
    const result = await initiateAuth(auth, "REFRESH_TOKEN_AUTH", { REFRESH_TOKEN: refreshToken });
    return keep(result, refreshToken);
  } catch {
    refreshToken = null;
    return null;
  }
}
