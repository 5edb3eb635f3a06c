// careloop workspace: SLA countdowns, keyboard shortcuts, the reply/note tabs, inserting a
// macro or a suggested article into the reply, and fading toasts. Everything works without it; this
// only makes it quicker. No inline script anywhere (the pages' CSP forbids it).
(function () {
  "use strict";

  function countdown(seconds) {
    var sign = seconds < 0 ? "-" : "";
    var s = Math.abs(seconds);
    var d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600);
    var m = Math.floor((s % 3600) / 60), sec = s % 60;
    if (d) return sign + d + "d " + h + "h";
    if (h) return sign + h + "h " + String(m).padStart(2, "0") + "m";
    if (m) return sign + m + "m";
    return sign + sec + "s";
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-due]:not([data-paused])").forEach(function (el) {
      var left = Math.floor((Date.parse(el.dataset.due) - now) / 1000);
      el.classList.remove("ok", "soon", "breached");
      el.classList.add(left < 0 ? "breached" : left <= 3600 ? "soon" : "ok");
      el.textContent = left < 0 ? el.dataset.breachedWord + " " + countdown(left) : countdown(left);
    });
  }

  function insertAt(target, text) {
    if (!target) return;
    var start = target.selectionStart || 0, end = target.selectionEnd || 0;
    target.value = target.value.slice(0, start) + text + target.value.slice(end);
    target.focus();
    target.selectionStart = target.selectionEnd = start + text.length;
  }

  function showTab(name) {
    var reply = document.getElementById("reply-panel"), note = document.getElementById("note-panel");
    if (!reply || !note) return;
    reply.hidden = name !== "reply";
    note.hidden = name !== "note";
    document.getElementById("reply-tab").setAttribute("aria-selected", String(name === "reply"));
    document.getElementById("note-tab").setAttribute("aria-selected", String(name === "note"));
    document.getElementById(name + "-body").focus();
  }

  document.addEventListener("click", function (e) {
    var el = e.target.closest("[data-insert-text], [data-insert-from], [data-show-keys], [role=tab], tr[data-href]");
    if (!el) return;
    if (el.matches("[data-show-keys]")) {
      document.getElementById("keys").showModal();
    } else if (el.matches("[role=tab]")) {
      showTab(el.id === "note-tab" ? "note" : "reply");
    } else if (el.matches("[data-insert-text]")) {
      showTab("reply");
      insertAt(document.querySelector(el.dataset.into), el.dataset.insertText);
    } else if (el.matches("[data-insert-from]")) {
      var url = document.querySelector(el.dataset.insertFrom).value;
      fetch(url, { headers: { Accept: "text/plain" }, credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (text) { insertAt(document.querySelector(el.dataset.into), text); });
    } else if (el.matches("tr[data-href]") && !e.target.closest("a")) {
      window.location = el.dataset.href;
    }
  });

  var pendingG = false;
  function rows() { return Array.prototype.slice.call(document.querySelectorAll("table.tickets tbody tr")); }
  function move(step) {
    var all = rows();
    if (!all.length) return;
    var i = all.findIndex(function (r) { return r.classList.contains("selected"); });
    if (i >= 0) all[i].classList.remove("selected");
    i = Math.min(all.length - 1, Math.max(0, i + step));
    all[i].classList.add("selected");
    all[i].scrollIntoView({ block: "nearest" });
  }

  document.addEventListener("keydown", function (e) {
    var typing = e.target.matches("input, textarea, select");
    if (typing) {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey) && e.target.matches("[data-submit-with-ctrl-enter]")) {
        e.preventDefault();
        e.target.form.requestSubmit();
      } else if (e.key === "Escape") {
        e.target.blur();
      }
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (pendingG) {
      pendingG = false;
      var link = document.querySelector('nav.views a[data-key="' + e.key + '"]');
      if (link) { e.preventDefault(); window.location = link.href; }
      return;
    }
    var selected = document.querySelector("table.tickets tr.selected");
    switch (e.key) {
      case "g": pendingG = true; setTimeout(function () { pendingG = false; }, 1500); break;
      case "/": e.preventDefault(); document.getElementById("search-box").focus(); break;
      case "j": move(1); break;
      case "k": move(-1); break;
      case "o": case "Enter": if (selected) window.location = selected.dataset.href; break;
      case "r": if (document.getElementById("reply-panel")) { e.preventDefault(); showTab("reply"); } break;
      case "n":
        if (document.getElementById("note-panel")) { e.preventDefault(); showTab("note"); }
        else if (document.getElementById("note-body")) { e.preventDefault(); document.getElementById("note-body").focus(); }
        break;
      case "?": document.getElementById("keys").showModal(); break;
      default: return;
    }
  });

  function fadeToasts() {
    document.querySelectorAll("#toasts .toast:not([data-fading])").forEach(function (t) {
      t.dataset.fading = "1";
      setTimeout(function () { t.remove(); }, 15000);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (document.getElementById("note-panel")) document.getElementById("note-panel").hidden = true;
    tick();
    setInterval(tick, 1000);
  });
  document.addEventListener("htmx:afterSwap", function () { tick(); fadeToasts(); });
  document.addEventListener("htmx:sseOpen", function () { document.body.dataset.live = "on"; });
  document.addEventListener("htmx:sseError", function () { document.body.dataset.live = "off"; });
})();
