// The dashboard's shell: configuration, sign-in, the hash router (#/view?query) and page-wide errors.

import { ApiDown, configure, SignInRequired } from "./api.js";
import { currentSession, SignInError, signIn, signOut } from "./auth.js";
import { $ } from "./ui.js";
import * as data from "./views/data.js";
import * as models from "./views/models.js";
import * as overview from "./views/overview.js";
import * as predictions from "./views/predictions.js";

const VIEWS = { overview, data, models, predictions };
let pageConfig = { api_base: "", auth: null };
let pendingSignIn = null;
let renderCount = 0;

function banner(text, { retry = false, info = false } = {}) {
  const box = $("#banner");
  box.hidden = !text;
  box.classList.toggle("info", info);
  $("#banner-text").textContent = text || "";
  $("#banner-retry").hidden = !retry;
}

function showUser() {
  const session = currentSession();
  $("#user-name").textContent = session ? session.user : pageConfig.auth ? "signed out" : "";
  $("#sign-out").hidden = !(session && pageConfig.auth);
}

function route() {
  const [name, query] = location.hash.replace(/^#\/?/, "").split("?");
  return { name: VIEWS[name] ? name : "overview", params: new URLSearchParams(query || "") };
}

// Go to a view; redraws even when the address does not change (e.g. after a job for the same day).
export function navigate(target) {
  const hash = `#/${target}`;
  if (location.hash === hash) render();
  else location.hash = hash;
}

function showSection(id) {
  for (const section of document.querySelectorAll("main > section")) section.hidden = section.id !== id;
}

// Marks a finished drawing: which view (or `view:error`) and a count that changes with every drawing.
let drawings = 0;
function done(outcome) {
  drawings += 1;
  document.body.dataset.ready = outcome;
  document.body.dataset.render = String(drawings);
}

async function render() {
  const mine = ++renderCount;
  document.body.dataset.ready = "";
  const { name, params } = route();
  for (const link of document.querySelectorAll("nav a")) {
    if (link.dataset.view === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `${name[0].toUpperCase()}${name.slice(1)} · closecast`;
  showSection(`view-${name}`);
  banner(null);
  try {
    await VIEWS[name].show(params);
    if (mine === renderCount) done(name); // the browser tests wait on this
  } catch (error) {
    if (mine !== renderCount) return;
    // nothing stays "Loading…" when a view could not load: each waiting panel says why
    const why = error instanceof ApiDown ? "Not loaded: the API is not answering." : `Not loaded: ${error.message || error}`;
    for (const waiting of document.querySelectorAll(`#view-${name} .state.loading, #view-${name} .inline-state.loading`)) {
      waiting.classList.replace("loading", "error");
      waiting.textContent = why;
    }
    if (error instanceof ApiDown) banner(`${error.message} Check that the stack is running, then retry.`, { retry: true });
    else if (error instanceof SignInRequired) banner(error.message, { retry: true });
    else banner(`Something went wrong: ${error.message || error}`, { retry: true });
    done(`${name}:error`);
  }
  showUser();
}

// Called by the API layer on a 401: show the form and resolve once the person has signed in.
function askToSignIn(reason) {
  if (!pageConfig.auth) {
    return Promise.reject(new SignInRequired("The API asks for sign-in, but this dashboard has no user pool configured."));
  }
  if (pendingSignIn) return pendingSignIn.promise;
  let resolve;
  const promise = new Promise((r) => {
    resolve = r;
  });
  pendingSignIn = { promise, resolve };
  $("#signin-reason").textContent = reason || "Sign in with your closecast account to see the data.";
  $("#signin-error").hidden = true;
  showSection("signin");
  done("signin");
  showUser();
  $("#signin-user").focus();
  return promise;
}

async function submitSignIn(event) {
  event.preventDefault();
  const button = $("#signin-submit");
  button.disabled = true;
  $("#signin-error").hidden = true;
  try {
    await signIn(pageConfig.auth, $("#signin-user").value.trim(), $("#signin-password").value);
    $("#signin-password").value = "";
    showUser();
    const waiting = pendingSignIn;
    pendingSignIn = null;
    showSection(`view-${route().name}`);
    if (waiting) waiting.resolve();
    else render();
  } catch (error) {
    $("#signin-error").textContent = error instanceof SignInError ? error.message : `Sign-in failed: ${error.message || error}`;
    $("#signin-error").hidden = false;
  } finally {
    button.disabled = false;
  }
}

async function start() {
  try {
    const response = await fetch("config.json", { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    pageConfig = await response.json();
  } catch (error) {
    banner(`The dashboard could not load its configuration (${error.message}); is the stack running?`, { retry: true });
  }
  if (!window.Chart) banner("The chart library did not load; charts cannot be drawn.");
  configure(pageConfig, askToSignIn);
  for (const view of Object.values(VIEWS)) view.init?.(navigate);
  $("#signin-form").addEventListener("submit", submitSignIn);
  $("#banner-retry").addEventListener("click", () => render());
  $("#sign-out").addEventListener("click", () => {
    signOut();
    showUser();
    askToSignIn("You are signed out. Sign in again to see the data.").then(() => render());
  });
  window.addEventListener("hashchange", render);
  if (pageConfig.auth && !currentSession()) {
    askToSignIn(null).then(() => render());
    return;
  }
  render();
}

start();
