"use strict";
(function () {
  const form = document.getElementById("login-form");
  const msg = document.getElementById("login-msg");
  // The page to return to: the server checked it is a local path (see security.local_path).
  const next = form.dataset.next || "/settings/models";
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    msg.textContent = "";
    const csrf = document.querySelector('meta[name="csrf-token"]').content;
    let res, data = {};
    try {
      res = await fetch("/api/login", {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify({ username: form.username.value, password: form.password.value }),
      });
      data = await res.json();
    } catch (e) { msg.textContent = "Synapse is not answering."; return; }
    if (res.ok) { location.href = next; return; }
    if (data.kind === "csrf") { location.reload(); return; }
    msg.textContent = data.detail || "Log in failed.";
    form.password.value = "";
    form.password.focus();
  });
})();
