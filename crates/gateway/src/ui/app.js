// The memory inspector. Plain JavaScript, no framework, no build step.
// Every text that comes from the server (memories are untrusted text
// written by agents) is set with textContent, never parsed as HTML.
"use strict";

(function () {
  const TOKEN_KEY = "memory-inspector-token";
  const WORKSPACE_KEY = "memory-inspector-workspace";
  const PAGE_SIZE = 250;
  const RENDER_CHUNK = 200;

  const $ = (id) => document.getElementById(id);

  const state = {
    token: null,
    admin: false,
    workspace: null,
    namespaces: [],
    cursor: null,
    shown: 0,
    // Bumped on every new listing, so an answer to an older one is dropped.
    generation: 0,
    queue: [],
    rendering: false,
    loading: false,
  };

  // `data-busy` on the list says whether a page is being fetched or drawn
  // (for people's assistive tools and for the browser test).
  function markBusy() {
    $("list").dataset.busy = state.loading || state.rendering ? "1" : "0";
  }

  // ---- small DOM helpers (text only) -----------------------------------

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function show(node, visible) {
    node.hidden = !visible;
  }

  // ---- token -----------------------------------------------------------

  function takeTokenFromFragment() {
    const hash = window.location.hash.replace(/^#/, "");
    if (!hash) return;
    const params = new URLSearchParams(hash);
    const token = params.get("token");
    if (token) {
      sessionStorage.setItem(TOKEN_KEY, token.trim());
      params.delete("token");
    }
    // Drop the token from the address bar (and from history).
    const rest = params.toString();
    const url = window.location.pathname + window.location.search + (rest ? "#" + rest : "");
    window.history.replaceState(null, "", url);
  }

  function signOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(WORKSPACE_KEY);
    state.token = null;
    show($("app"), false);
    show($("signout"), false);
    $("who").textContent = "";
    show($("login"), true);
    const error = $("login-error");
    error.textContent = message || "";
    show(error, Boolean(message));
    $("token-input").value = "";
    $("token-input").focus();
  }

  // ---- REST ------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(method, path) {
    let response;
    try {
      response = await fetch(path, {
        method: method,
        headers: { Authorization: "Bearer " + state.token, Accept: "application/json" },
        cache: "no-store",
        credentials: "omit",
      });
    } catch (e) {
      throw new ApiError(0, "network", "The gateway cannot be reached (" + e.message + ").");
    }
    if (response.status === 204) return null;
    let body = null;
    try {
      body = await response.json();
    } catch (e) {
      body = null;
    }
    if (!response.ok) {
      const code = body && body.code ? body.code : "error";
      const message = body && body.message ? body.message : "The gateway answered " + response.status + ".";
      if (response.status === 401) {
        signOut("The token was refused: " + message);
      }
      throw new ApiError(response.status, code, message);
    }
    return body;
  }

  function wsPath(rest) {
    return "/workspaces/" + encodeURIComponent(state.workspace) + rest;
  }

  // ---- banner ----------------------------------------------------------

  function showBanner(error) {
    const unavailable = error.status === 503 || error.code === "unavailable" || error.status === 0;
    $("banner-title").textContent = unavailable
      ? "The memory store is unreachable."
      : "The gateway refused this request.";
    $("banner-text").textContent = unavailable
      ? " Nothing could be read, so an empty list here would not mean \u201cno memories\u201d. (" + error.message + ")"
      : " " + error.message;
    $("banner").classList.toggle("banner-down", unavailable);
    show($("banner"), true);
  }

  function hideBanner() {
    show($("banner"), false);
  }

  // ---- formatting ------------------------------------------------------

  function ttlText(expiresAt, now) {
    if (!expiresAt) return null;
    const left = Date.parse(expiresAt) - now;
    if (!(left > 0)) return "expired";
    const minute = 60 * 1000;
    const hour = 60 * minute;
    const day = 24 * hour;
    if (left >= day) return Math.floor(left / day) + "d";
    if (left >= hour) return Math.floor(left / hour) + "h";
    if (left >= minute) return Math.floor(left / minute) + "m";
    return "<1m";
  }

  function setTtl(node, now) {
    const text = ttlText(node.dataset.expires, now);
    node.textContent = text === "expired" ? "expired" : "expires in " + text;
    node.classList.toggle("expired", text === "expired");
  }

  function createdText(iso) {
    const at = new Date(iso);
    if (isNaN(at.getTime())) return iso;
    return at.toLocaleString(undefined, {
      year: "numeric",
      month: "short",
      day: "numeric",
      hour: "2-digit",
      minute: "2-digit",
    });
  }

  const KIND_LABEL = { workspace: "Workspace", team: "Team", org: "Organisation", custom: "Custom" };

  // ---- memory rows -----------------------------------------------------

  function memoryRow(m, now) {
    const li = el("li", "memory");
    li.dataset.id = m.id;
    li.dataset.namespace = m.namespace;
    if (m.shared) li.classList.add("is-shared");

    const meta = el("div", "meta");
    meta.appendChild(el("span", "badge kind kind-" + m.kind, m.kind));
    if (m.shared) {
      const shared = el("span", "badge shared", "Shared with the organisation");
      shared.title = "Every workspace of the organisation reads this memory.";
      meta.appendChild(shared);
    }
    if (m.pin) meta.appendChild(el("span", "badge pin", "Pinned"));
    const ns = el("span", "ns", (KIND_LABEL[m.namespace_kind] || m.namespace_kind) + " \u00b7 " + m.namespace_display_name);
    ns.title = m.namespace;
    meta.appendChild(ns);
    meta.appendChild(el("span", "source", "from " + m.source));
    if (m.expires_at) {
      const ttl = el("span", "ttl");
      ttl.dataset.expires = m.expires_at;
      ttl.title = "Expires " + createdText(m.expires_at);
      setTtl(ttl, now);
      meta.appendChild(ttl);
    }
    const id = el("code", "id", m.id);
    id.title = "Memory id";
    meta.appendChild(id);
    const created = el("time", "created", createdText(m.created_at));
    created.dateTime = m.created_at;
    created.title = "Created " + m.created_at;
    meta.appendChild(created);
    li.appendChild(meta);

    const body = el("div", "body");
    body.appendChild(el("p", "content", m.content));
    const actions = el("div", "actions");
    if (m.can_forget) {
      const forget = el("button", "forget secondary", "Forget");
      forget.type = "button";
      const confirm = el("span", "confirm");
      confirm.hidden = true;
      confirm.appendChild(el("span", "confirm-text", "Forget this memory for good?"));
      const yes = el("button", "confirm-yes danger", "Yes, forget it");
      yes.type = "button";
      const no = el("button", "confirm-no secondary", "Keep it");
      no.type = "button";
      confirm.appendChild(yes);
      confirm.appendChild(no);
      forget.addEventListener("click", () => {
        forget.hidden = true;
        confirm.hidden = false;
        no.focus();
      });
      no.addEventListener("click", () => {
        confirm.hidden = true;
        forget.hidden = false;
      });
      yes.addEventListener("click", () => forgetMemory(m, li, yes));
      actions.appendChild(forget);
      actions.appendChild(confirm);
    } else {
      actions.appendChild(el("span", "readonly", "read-only here"));
    }
    body.appendChild(actions);
    li.appendChild(body);
    return li;
  }

  // Rows are rendered a chunk per animation frame, so thousands of them
  // never block the page.
  function enqueue(memories) {
    for (const m of memories) state.queue.push(m);
    if (!state.rendering) {
      state.rendering = true;
      markBusy();
      window.requestAnimationFrame(renderChunk);
    }
  }

  function renderChunk() {
    const chunk = state.queue.splice(0, RENDER_CHUNK);
    const now = Date.now();
    const fragment = document.createDocumentFragment();
    for (const m of chunk) fragment.appendChild(memoryRow(m, now));
    $("list").appendChild(fragment);
    state.shown += chunk.length;
    updateStatus();
    if (state.queue.length > 0) {
      window.requestAnimationFrame(renderChunk);
    } else {
      state.rendering = false;
      $("list").dataset.rendered = String(state.shown);
      markBusy();
    }
  }

  function updateStatus(extra) {
    const n = state.shown + state.queue.length;
    let text = n === 1 ? "1 memory" : n + " memories";
    if (state.cursor) text += " so far (newest first within each page; more to load)";
    else if (state.mode === "search") text += " matching the search (best matches first)";
    else if (state.mode === "recent") text += " (the newest; this store cannot page further)";
    if (extra) text += ". " + extra;
    $("status").textContent = text;
  }

  async function forgetMemory(m, li, button) {
    button.disabled = true;
    try {
      await api(
        "DELETE",
        wsPath("/v2/memories/" + encodeURIComponent(m.id) + "?namespace=" + encodeURIComponent(m.namespace))
      );
      li.remove();
      state.shown -= 1;
      hideBanner();
      updateStatus("Forgot one memory");
    } catch (e) {
      button.disabled = false;
      if (e.status !== 401) showBanner(e);
    }
  }

  // ---- listing ---------------------------------------------------------

  function listQuery() {
    const params = new URLSearchParams();
    const ns = $("namespace").value;
    if (ns) params.set("namespace", ns);
    const kind = $("kind").value;
    if (kind) params.set("kind", kind);
    const q = $("q").value.trim();
    if (q) params.set("q", q);
    if (q && $("search-mode").value === "semantic") params.set("mode", "semantic");
    params.set("limit", String(PAGE_SIZE));
    return params;
  }

  async function loadMemories(reset) {
    const more = $("more");
    if (reset) {
      state.generation += 1;
      state.cursor = null;
      state.queue = [];
      state.shown = 0;
      $("list").textContent = "";
      $("list").dataset.rendered = "0";
      show($("empty"), false);
      show(more, false);
      $("status").textContent = "Loading\u2026";
    }
    const generation = state.generation;
    const params = listQuery();
    if (!reset && state.cursor) params.set("after", state.cursor);
    more.disabled = true;
    state.loading = true;
    markBusy();
    try {
      const page = await api("GET", wsPath("/v2/memories?" + params.toString()));
      if (generation !== state.generation) return;
      hideBanner();
      state.mode = page.mode;
      state.cursor = page.next_after || null;
      enqueue(page.memories);
      show(more, Boolean(state.cursor));
      show($("empty"), state.shown + state.queue.length === 0);
      updateStatus();
    } catch (e) {
      if (generation !== state.generation) return;
      if (e.status === 401) return;
      showBanner(e);
      $("status").textContent = "";
      show($("empty"), false);
    } finally {
      more.disabled = false;
      state.loading = false;
      markBusy();
    }
  }

  // ---- namespaces and workspaces -----------------------------------------

  function fillNamespaces(answer) {
    state.namespaces = answer.readable;
    const select = $("namespace");
    const previous = select.value;
    select.textContent = "";
    select.appendChild(el("option", null, "All readable namespaces")).value = "";
    for (const kind of ["workspace", "team", "org", "custom"]) {
      const entries = answer.readable.filter((e) => e.kind === kind);
      if (entries.length === 0) continue;
      const group = el("optgroup");
      group.label = KIND_LABEL[kind];
      for (const entry of entries) {
        const label = entry.display_name + (entry.writable ? "" : " (read-only)");
        const option = el("option", entry.writable ? null : "readonly", label);
        option.value = entry.name;
        option.title = entry.name;
        option.dataset.kind = entry.kind;
        option.dataset.writable = String(entry.writable);
        group.appendChild(option);
      }
      select.appendChild(group);
    }
    if (answer.readable.some((e) => e.name === previous)) select.value = previous;
    const mode = $("search-mode");
    mode.textContent = "";
    mode.appendChild(el("option", null, "Full-text")).value = "fulltext";
    if (answer.semantic_search) {
      mode.appendChild(el("option", null, "Semantic")).value = "semantic";
    }
    describeNamespace();
  }

  function describeNamespace() {
    const name = $("namespace").value;
    const entry = state.namespaces.find((e) => e.name === name);
    $("ns-description").textContent = entry
      ? entry.description + " (" + entry.name + ")"
      : "Every namespace this workspace reads: its own, its team's and its organisation's.";
  }

  async function openWorkspace(id) {
    state.workspace = id;
    sessionStorage.setItem(WORKSPACE_KEY, id);
    try {
      const answer = await api("GET", wsPath("/v2/namespaces"));
      fillNamespaces(answer);
      if (!state.admin) $("who").textContent = "Workspace " + answer.display_name;
      await loadMemories(true);
    } catch (e) {
      if (e.status !== 401) showBanner(e);
    }
  }

  async function fillWorkspaces() {
    const answer = await api("GET", "/admin/workspaces");
    const select = $("workspace");
    select.textContent = "";
    const live = answer.workspaces.filter((w) => w.status !== "removed");
    const byId = new Map(live.map((w) => [w.id, w]));
    const depth = (w) => {
      let d = 0;
      let at = w;
      while (at && at.parent_id && byId.has(at.parent_id) && d < 10) {
        at = byId.get(at.parent_id);
        d += 1;
      }
      return d;
    };
    for (const w of live) {
      const option = el("option", null, "\u2003".repeat(depth(w)) + (w.name || w.id));
      option.value = w.id;
      option.title = w.id;
      select.appendChild(option);
    }
    return live;
  }

  async function start() {
    state.token = sessionStorage.getItem(TOKEN_KEY);
    if (!state.token) {
      signOut("");
      return;
    }
    let me;
    try {
      me = await api("GET", "/v2/whoami");
    } catch (e) {
      if (e.status !== 401) {
        show($("login"), true);
        const error = $("login-error");
        error.textContent = e.message;
        show(error, true);
      }
      return;
    }
    show($("login"), false);
    show($("app"), true);
    show($("signout"), true);
    state.admin = me.admin;
    if (me.admin) {
      $("who").textContent = "Operator (admin token)";
      show($("workspace-field"), true);
      let live;
      try {
        live = await fillWorkspaces();
      } catch (e) {
        if (e.status !== 401) showBanner(e);
        return;
      }
      if (live.length === 0) {
        $("status").textContent = "No workspaces yet.";
        return;
      }
      const saved = sessionStorage.getItem(WORKSPACE_KEY);
      const first = live.some((w) => w.id === saved) ? saved : live[0].id;
      $("workspace").value = first;
      await openWorkspace(first);
    } else {
      show($("workspace-field"), false);
      await openWorkspace(me.workspace);
    }
  }

  // ---- wiring ------------------------------------------------------------

  function wire() {
    $("login-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const token = $("token-input").value.trim();
      if (!token) return;
      sessionStorage.setItem(TOKEN_KEY, token);
      start();
    });
    $("signout").addEventListener("click", () => signOut(""));
    $("filters").addEventListener("submit", (event) => {
      event.preventDefault();
      loadMemories(true);
    });
    $("clear").addEventListener("click", () => {
      $("q").value = "";
      loadMemories(true);
    });
    $("namespace").addEventListener("change", () => {
      describeNamespace();
      loadMemories(true);
    });
    $("kind").addEventListener("change", () => loadMemories(true));
    $("workspace").addEventListener("change", () => openWorkspace($("workspace").value));
    $("more").addEventListener("click", () => loadMemories(false));
    $("retry").addEventListener("click", () => {
      hideBanner();
      openWorkspace(state.workspace);
    });
    // The TTL countdowns move on by themselves.
    window.setInterval(() => {
      const now = Date.now();
      for (const node of document.querySelectorAll(".ttl[data-expires]")) setTtl(node, now);
    }, 30 * 1000);
  }

  document.addEventListener("DOMContentLoaded", () => {
    takeTokenFromFragment();
    wire();
    start();
  });
  // A link with a new #token= opened in this tab switches to that token.
  window.addEventListener("hashchange", () => {
    if (!/(^#|&)token=/.test(window.location.hash)) return;
    takeTokenFromFragment();
    start();
  });
})();
