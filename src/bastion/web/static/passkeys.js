// Passkey sign-in and registration for Bastion's pages. Served as a file so the pages'
// CSP can forbid inline script. Everything else on the pages works without JavaScript.
"use strict";

(() => {
  const PKC = window.PublicKeyCredential;
  if (!PKC || !navigator.credentials) return;

  function b64urlToBuf(s) {
    const b64 = s.replace(/-/g, "+").replace(/_/g, "/");
    const bin = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }

  function bufToB64url(buf) {
    const bytes = new Uint8Array(buf);
    let bin = "";
    for (let i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  // Browsers without the WebAuthn JSON helpers get the same conversion by hand.
  function creationOptions(json) {
    if (typeof PKC.parseCreationOptionsFromJSON === "function") {
      return PKC.parseCreationOptionsFromJSON(json);
    }
    return {
      ...json,
      challenge: b64urlToBuf(json.challenge),
      user: { ...json.user, id: b64urlToBuf(json.user.id) },
      excludeCredentials: (json.excludeCredentials || []).map((c) => ({ ...c, id: b64urlToBuf(c.id) })),
    };
  }

  function requestOptions(json) {
    if (typeof PKC.parseRequestOptionsFromJSON === "function") {
      return PKC.parseRequestOptionsFromJSON(json);
    }
    return {
      ...json,
      challenge: b64urlToBuf(json.challenge),
      allowCredentials: (json.allowCredentials || []).map((c) => ({ ...c, id: b64urlToBuf(c.id) })),
    };
  }

  function credentialJSON(cred) {
    if (typeof cred.toJSON === "function") return cred.toJSON();
    const r = cred.response;
    const json = {
      id: cred.id,
      rawId: bufToB64url(cred.rawId),
      type: cred.type,
      clientExtensionResults: cred.getClientExtensionResults(),
      response: { clientDataJSON: bufToB64url(r.clientDataJSON) },
    };
    if (r.attestationObject !== undefined) {
      json.response.attestationObject = bufToB64url(r.attestationObject);
      json.response.transports = typeof r.getTransports === "function" ? r.getTransports() : [];
    } else {
      json.response.authenticatorData = bufToB64url(r.authenticatorData);
      json.response.signature = bufToB64url(r.signature);
      json.response.userHandle = r.userHandle ? bufToB64url(r.userHandle) : null;
    }
    return json;
  }

  async function post(url, data) {
    const response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      credentials: "same-origin",
      body: JSON.stringify(data),
    });
    const body = await response.json();
    if (body.redirect && !response.ok) window.location.assign(body.redirect);
    if (!response.ok) throw new Error(body.error || "the request failed");
    return body;
  }

  function wire(section, button, ceremony) {
    if (!section || !button) return;
    section.hidden = false;
    const error = section.querySelector("[role=alert]");
    button.addEventListener("click", async () => {
      error.textContent = "";
      button.disabled = true;
      try {
        const done = await ceremony(section.dataset);
        window.location.assign(done.redirect);
      } catch (err) {
        error.textContent = err.name === "NotAllowedError"
          ? "The passkey was not used. Try again."
          : err.message;
      } finally {
        button.disabled = false;
      }
    });
  }

  async function signIn(data) {
    const base = { interaction: data.interaction, csrf: data.csrf };
    const options = await post(data.options, base);
    const cred = await navigator.credentials.get({ publicKey: requestOptions(options) });
    return post(data.finish, { ...base, credential: credentialJSON(cred) });
  }

  async function register(data) {
    const options = await post(data.options, { csrf: data.csrf });
    const cred = await navigator.credentials.create({ publicKey: creationOptions(options) });
    const name = document.getElementById("passkey-name").value;
    return post(data.finish, { csrf: data.csrf, name, credential: credentialJSON(cred) });
  }

  document.addEventListener("DOMContentLoaded", () => {
    wire(document.getElementById("passkey"), document.getElementById("passkey-sign-in"), signIn);
    wire(
      document.getElementById("passkey-register"),
      document.getElementById("passkey-add"),
      register,
    );
  });
})();
