// Settings → API Keys. Plain JS over /api/keys; the new key is shown once, with a copy button.
"use strict";
(function () {
  const { $, el, api, showBanner } = window.Synapse;
  const when = (iso) => iso ? iso.replace("T", " ").replace("Z", "").slice(0, 16) : "—";
  function usd(v) {
    if (v === null || v === undefined) return "—";
    if (v > 0 && v < 0.0001) return "$" + Number(v).toPrecision(2);  // a few tiny calls: not "$0.0000"
    return "$" + Number(v).toFixed(v >= 100 ? 2 : 4);
  }

  function statusBadge(status) {
    return el("span", { class: "status status-" + status.replace(/\s+/g, "-"), text: status });
  }

  function render(rows) {
    const body = $("#keys-table tbody");
    $("#empty").hidden = rows.length > 0;
    $("#keys-table").hidden = rows.length === 0;
    body.replaceChildren(...rows.map((k) => {
      const active = k.status === "active" || k.status === "budget spent";
      const revoke = k.status === "revoked" ? "" : el("button", {
        type: "button", class: "btn btn-quiet", text: "Revoke", "aria-label": "Revoke " + k.name,
        onclick: (ev) => revokeKey(k.name, ev.currentTarget),
      });
      return el("tr", { "data-name": k.name, class: active ? null : "row-off" },
        el("td", { "data-col": "name" }, el("strong", { text: k.name })),
        el("td", { "data-col": "prefix" }, el("code", { text: k.prefix })),
        el("td", { "data-col": "models", text: k.models.length ? k.models.join(", ") : "all" }),
        el("td", { "data-col": "created", text: when(k.created) }),
        el("td", { "data-col": "last_used", text: when(k.last_used) }),
        el("td", { "data-col": "spend", class: "num", text: usd(k.spend_usd) }),
        el("td", { "data-col": "budget", class: "num", text: k.budget_usd === null ? "no limit" : usd(k.budget_usd) }),
        el("td", { "data-col": "rpm", class: "num", text: k.rpm ? k.rpm + "/min" : "no limit" }),
        el("td", { "data-col": "status" }, statusBadge(k.status)),
        el("td", null, revoke));
    }));
  }

  async function load() {
    try {
      render(await api("GET", "/api/keys"));
      showBanner("");
    } catch (e) {
      showBanner("Could not load the keys.\n" + e.message);
    } finally {
      document.body.dataset.loaded = String(Date.now());
    }
  }

  async function revokeKey(name, button) {
    if (button.dataset.confirm !== "1") {  // two clicks: a revoke cannot be undone
      button.dataset.confirm = "1";
      button.textContent = "Revoke: sure?";
      button.classList.add("btn-danger", "confirm");
      return;
    }
    button.disabled = true;
    try {
      await api("DELETE", "/api/keys/" + encodeURIComponent(name));
      await load();
    } catch (e) {
      showBanner("Could not revoke " + name + ".\n" + e.message);
      button.disabled = false;
    }
  }

  $("#create-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const form = ev.currentTarget;
    for (const input of form.querySelectorAll("input")) input.removeAttribute("aria-invalid");
    const msg = $("#create-msg");
    msg.textContent = "";
    msg.classList.remove("error-text");
    const data = {
      name: $("#name").value.trim(),
      models: $("#models").value.trim(),
      budget_usd: $("#budget").value.trim() || null,
      expires_days: $("#expires").value.trim() || null,
      rpm: $("#rpm").value.trim() || null,
    };
    $("#create").disabled = true;
    try {
      const made = await api("POST", "/api/keys", data);
      $("#secret-name").textContent = made.info.name;
      $("#secret-value").value = made.key;
      $("#example").textContent = "curl " + location.origin + "/v1/models -H \"Authorization: Bearer " + made.key + "\"";
      $("#copy-msg").textContent = "";
      $("#secret").hidden = false;
      $("#secret-value").focus();
      $("#secret-value").select();
      form.reset();
      await load();
    } catch (e) {
      msg.textContent = e.message;
      msg.classList.add("error-text");
      const field = e.data && e.data.field;
      const input = field && form.querySelector('[name="' + field + '"]');
      if (input) { input.setAttribute("aria-invalid", "true"); input.focus(); }
    } finally {
      $("#create").disabled = false;
    }
  });

  $("#copy").addEventListener("click", async () => {
    const value = $("#secret-value").value;
    try {
      await navigator.clipboard.writeText(value);
      $("#copy-msg").textContent = "Copied.";
    } catch (e) {
      $("#secret-value").select();
      $("#copy-msg").textContent = "Select the key and copy it (Ctrl+C / ⌘C).";
    }
  });

  load();
})();
