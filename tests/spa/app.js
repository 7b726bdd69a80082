// A single-page application as a developer would write one with oidc-client-ts: the authorization
// code flow with PKCE as a public client, tokens refreshed with the refresh token, userinfo read with
// fetch, RP-initiated logout. window.SPA_CONFIG (config.js) names the provider and the client.
"use strict";

const config = window.SPA_CONFIG;
const here = new URL(".", window.location.href).href;
const manager = new oidc.UserManager({
  authority: config.authority,
  client_id: config.client_id,
  redirect_uri: here + "callback.html",
  post_logout_redirect_uri: here + "index.html",
  response_type: "code",
  scope: "openid profile email",
  automaticSilentRenew: false,
});
const element = (id) => document.getElementById(id);
let previousAccessToken = null;

function show(user) {
  const signedIn = Boolean(user && !user.expired);
  element("subject").textContent = signedIn ? user.profile.sub : "";
  element("access-token").textContent = signedIn ? user.access_token : "";
  element("refresh-token").textContent = signedIn ? user.refresh_token || "" : "";
  return signedIn;
}

async function step(name, action) {
  element("error").textContent = "";
  try {
    await action();
  } catch (error) {
    element("error").textContent = `${name} failed: ${error.message}`;
  }
}

async function userinfo(accessToken) {
  const endpoint = await manager.metadataService.getUserInfoEndpoint();
  return fetch(endpoint, { headers: { Authorization: `Bearer ${accessToken}` } });
}

async function home() {
  element("sign-in").onclick = () => step("Sign-in", () => manager.signinRedirect());
  element("refresh").onclick = () => step("Refresh", async () => {
    previousAccessToken = (await manager.getUser()).access_token;
    show(await manager.signinSilent());
    element("status").textContent = "Tokens refreshed";
  });
  element("userinfo").onclick = () => step("Userinfo", async () => {
    const response = await userinfo((await manager.getUser()).access_token);
    element("profile").textContent = JSON.stringify(await response.json(), null, 2);
    if (previousAccessToken) {
      element("previous-token-status").textContent = String((await userinfo(previousAccessToken)).status);
    }
  });
  element("sign-out").onclick = () => step("Sign-out", () => manager.signoutRedirect());

  if (new URLSearchParams(window.location.search).has("state")) {
    await step("Sign-out callback", () => manager.signoutCallback());
    window.history.replaceState(null, "", here + "index.html");
  }
  const signedIn = show(await manager.getUser());
  element("status").textContent = signedIn ? "Signed in" : "Signed out";
}

async function callback() {
  await step("Sign-in callback", async () => {
    await manager.signinCallback();
    window.location.replace(here + "index.html");
  });
}

(document.body.dataset.page === "callback" ? callback : home)();
