// Vaultaire console: vanilla JavaScript, no dependencies. Every request is
// signed here with AWS SigV4 (WebCrypto HMAC-SHA256) against this node's S3
// and /_vault/admin endpoints. The secret key lives only in the `session`
// object in memory: never in cookies, localStorage or sessionStorage.
"use strict";
(() => {
const REGION = "us-east-1", PART = 8 << 20, enc = new TextEncoder();
let session = null; // {ak, sk, root}

const $ = (id) => document.getElementById(id);
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null) e.setAttribute(k, v);
  }
  for (const k of kids.flat()) e.append(k instanceof Node ? k : String(k));
  return e;
}
function showError(msg) { const e = $("error"); e.textContent = msg; e.hidden = !msg; }
function human(n) {
  n = Number(n); if (!isFinite(n)) return "-";
  const u = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]; let i = 0;
  while (Math.abs(n) >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + u[i];
}

// ---- SigV4 ----
const hex = (buf) => [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, "0")).join("");
async function sha256(data) { return hex(await crypto.subtle.digest("SHA-256", typeof data === "string" ? enc.encode(data) : data)); }
async function hmac(key, msg) {
  const k = await crypto.subtle.importKey("raw", typeof key === "string" ? enc.encode(key) : key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return crypto.subtle.sign("HMAC", k, enc.encode(msg));
}
// uri encodes as SigV4 does: every byte but A-Za-z0-9-_.~ (and / in paths).
function uri(s, slash) {
  const e = encodeURIComponent(s).replace(/[!'()*]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
  return slash ? e.replace(/%2F/g, "/") : e;
}
function objectPath(bucket, key) { return "/" + uri(bucket) + (key !== undefined ? "/" + uri(key, true) : ""); }
function canonicalQuery(q) {
  return Object.entries(q || {}).map(([k, v]) => [uri(k), uri(v === true ? "" : String(v))])
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : 1)).map(([k, v]) => k + "=" + v).join("&");
}
function amzDate(d) { return d.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, ""); }
async function signingKey(sk, day) {
  let k = await hmac("AWS4" + sk, day);
  k = await hmac(k, REGION); k = await hmac(k, "s3");
  return hmac(k, "aws4_request");
}
async function signature(sk, date, canonical) {
  const day = date.slice(0, 8), scope = `${day}/${REGION}/s3/aws4_request`;
  const sts = ["AWS4-HMAC-SHA256", date, scope, await sha256(canonical)].join("\n");
  return { scope, sig: hex(await hmac(await signingKey(sk, day), sts)) };
}

// request signs and sends one request; opts: {query, body, headers, payload}.
async function request(method, path, opts = {}) {
  const s = opts.session || session, date = amzDate(new Date()), host = location.host;
  const payload = opts.payload || (opts.body === undefined || opts.body === null ? await sha256("") :
    typeof opts.body === "string" ? await sha256(opts.body) : "UNSIGNED-PAYLOAD");
  const hdrs = { host, "x-amz-content-sha256": payload, "x-amz-date": date };
  for (const [k, v] of Object.entries(opts.headers || {})) hdrs[k.toLowerCase()] = String(v).trim();
  const names = Object.keys(hdrs).sort(), signed = names.join(";");
  const canonical = [method, path, canonicalQuery(opts.query), names.map((n) => n + ":" + hdrs[n] + "\n").join(""), signed, payload].join("\n");
  const { scope, sig } = await signature(s.sk, date, canonical);
  delete hdrs.host;
  hdrs.authorization = `AWS4-HMAC-SHA256 Credential=${s.ak}/${scope}, SignedHeaders=${signed}, Signature=${sig}`;
  const q = canonicalQuery(opts.query);
  return fetch(path + (q ? "?" + q : ""), { method, headers: hdrs, body: opts.body, cache: "no-store", credentials: "omit" });
}
async function s3err(resp) {
  const t = await resp.text();
  const code = /<Code>([^<]*)<\/Code>/.exec(t), msg = /<Message>([^<]*)<\/Message>/.exec(t);
  return new Error(`${resp.status} ${code ? code[1] : resp.statusText}${msg ? ": " + msg[1] : ""}`);
}
async function must(respP) { const r = await respP; if (!r.ok) throw await s3err(r); return r; }
async function xml(respP) { return new DOMParser().parseFromString(await (await must(respP)).text(), "application/xml"); }
const tx = (n, tag) => { const e = n.getElementsByTagName(tag)[0]; return e ? e.textContent : ""; };

async function presign(bucket, key, expires) {
  const date = amzDate(new Date()), day = date.slice(0, 8), path = objectPath(bucket, key);
  const q = { "X-Amz-Algorithm": "AWS4-HMAC-SHA256", "X-Amz-Credential": `${session.ak}/${day}/${REGION}/s3/aws4_request`,
    "X-Amz-Date": date, "X-Amz-Expires": String(expires), "X-Amz-SignedHeaders": "host" };
  const canonical = ["GET", path, canonicalQuery(q), "host:" + location.host + "\n", "host", "UNSIGNED-PAYLOAD"].join("\n");
  const { sig } = await signature(session.sk, date, canonical);
  return location.origin + path + "?" + canonicalQuery(q) + "&X-Amz-Signature=" + sig;
}

// ---- login ----
async function login(ev) {
  ev.preventDefault();
  showError("");
  const s = { ak: $("ak").value.trim(), sk: $("sk").value, root: false };
  try {
    const r = await request("GET", "/_vault/admin/tenants", { session: s });
    if (r.ok) s.root = true;
    else await must(request("GET", "/", { session: s }));
  } catch (e) { showError("Login failed: " + e.message); return; }
  session = s;
  $("sk").value = "";
  $("who").textContent = (s.root ? "root" : "tenant") + " · " + s.ak;
  $("logout").hidden = false;
  // Metrics name every tenant: root only (the node refuses other tenants).
  const tabs = s.root ? ["Cluster", "Tenants", "Buckets", "Metrics"] : ["Buckets"];
  $("tabs").replaceChildren(...tabs.map((t) => el("button", { id: "tab-" + t.toLowerCase(), onclick: () => show(t) }, t)));
  $("tabs").hidden = false;
  show(tabs[0]);
}
function logout() {
  session = null; stopCharts();
  location.reload();
}
let current = "";
async function show(tab, ...args) {
  current = tab; stopCharts(); showError("");
  for (const b of $("tabs").children) b.classList.toggle("on", b.textContent === tab);
  const main = $("main"); main.replaceChildren(el("p", {}, "Loading…"));
  try { await views[tab](main, ...args); } catch (e) { showError(e.message); main.replaceChildren(); }
}

// ---- root views ----
function tableOf(obj) {
  if (obj === null || typeof obj !== "object") return document.createTextNode(String(obj));
  if (Array.isArray(obj)) {
    if (obj.length && obj.every((o) => o && typeof o === "object" && !Array.isArray(o))) {
      const cols = [...new Set(obj.flatMap(Object.keys))];
      return el("table", {}, el("tr", {}, cols.map((c) => el("th", {}, c))),
        obj.map((o) => el("tr", {}, cols.map((c) => el("td", {}, o[c] === undefined ? "" : tableOf(o[c]))))));
    }
    return document.createTextNode(obj.map((o) => (typeof o === "object" ? JSON.stringify(o) : o)).join(", "));
  }
  return el("table", { class: "kv" }, Object.entries(obj).map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, tableOf(v)))));
}
const views = {};
views.Cluster = async (main) => {
  const h = await (await fetch("/_vault/health", { cache: "no-store" })).json();
  const r = await request("GET", "/_vault/admin/cluster");
  let body;
  if (r.ok) body = tableOf(await r.json());
  else { const e = await s3err(r); body = el("p", { class: "note" }, "No cluster status (" + e.message + "): a single node."); }
  main.replaceChildren(el("h2", {}, "Cluster health"), el("p", { id: "health" }, "This node: ", h.node || "(unnamed)", " — ",
    el("span", { class: h.status === "ok" ? "ok" : "bad" }, h.status)), el("div", { id: "cluster" }, body));
};
views.Tenants = async (main) => {
  const ts = await (await must(request("GET", "/_vault/admin/tenants"))).json();
  const out = el("div", { id: "newkeys" });
  const lim = (v, f) => (v ? f(v) : "unlimited");
  const rows = ts.map((t) => el("tr", { "data-tenant": t.name }, el("td", {}, t.name), el("td", {}, t.access_keys.join(", ")),
    el("td", {}, human(t.usage.bytes) + " / " + lim(t.limits.max_bytes, human)),
    el("td", {}, t.usage.artifacts + " / " + lim(t.limits.max_artifacts, String)),
    el("td", {}, t.limits.rps ? `${t.limits.rps}/s burst ${t.limits.burst}` : "default"),
    el("td", {}, el("button", { class: "addkey", onclick: async () => {
      try { keysShown(out, await (await must(request("POST", `/_vault/admin/tenants/${uri(t.name)}/keys`))).json()); } catch (e) { showError(e.message); }
    } }, "Add key"))));
  const create = el("form", { id: "create-tenant", onsubmit: async (ev) => {
    ev.preventDefault();
    try {
      const nt = await (await must(request("PUT", "/_vault/admin/tenants/" + uri($("tname").value.trim())))).json();
      await views.Tenants(main); keysShown($("newkeys"), nt);
    } catch (e) { showError(e.message); }
  } }, el("label", {}, "New tenant", el("input", { id: "tname", required: "", pattern: "[a-z0-9][a-z0-9-]*" })), el("button", { type: "submit" }, "Create tenant"));
  const limits = el("form", { id: "set-limits", onsubmit: async (ev) => {
    ev.preventDefault();
    const name = uri($("lname").value.trim()), num = (id) => Number($(id).value || 0);
    try {
      await must(request("PUT", `/_vault/admin/tenants/${name}/rate`, { body: JSON.stringify({ rps: num("lrps"), burst: num("lburst") }) }));
      await must(request("PUT", `/_vault/admin/tenants/${name}/quota`, { body: JSON.stringify({ max_bytes: num("lbytes"), max_artifacts: num("lart") }) }));
      await views.Tenants(main);
    } catch (e) { showError(e.message); }
  } }, el("label", {}, "Tenant", el("input", { id: "lname", required: "" })),
  el("label", {}, "Requests/s (0 default)", el("input", { id: "lrps", type: "number", min: 0, step: "any" })),
  el("label", {}, "Burst", el("input", { id: "lburst", type: "number", min: 0 })),
  el("label", {}, "Quota bytes (0 none)", el("input", { id: "lbytes", type: "number", min: 0 })),
  el("label", {}, "Quota objects (0 none)", el("input", { id: "lart", type: "number", min: 0 })),
  el("button", { type: "submit" }, "Set rate and quota"));
  main.replaceChildren(el("h2", {}, "Tenants"), el("table", { id: "tenants" },
    el("tr", {}, ["Tenant", "Access keys", "Bytes / quota", "Objects / quota", "Rate", ""].map((c) => el("th", {}, c))), rows),
  create, out, el("h3", {}, "Rate and quota"), limits);
};
function keysShown(box, nt) {
  box.replaceChildren(el("div", { class: "secret" }, `Tenant ${nt.name}: access key `, el("code", { class: "new-ak" }, nt.access_key),
    " secret key ", el("code", { class: "new-sk" }, nt.secret_key), el("br"), "Copy the secret now: it is not shown again."));
}

// ---- buckets and objects ----
views.Buckets = async (main) => {
  const doc = await xml(request("GET", "/"));
  const bs = [...doc.getElementsByTagName("Bucket")].map((b) => ({ name: tx(b, "Name"), created: tx(b, "CreationDate") }));
  main.replaceChildren(el("h2", {}, "Buckets"),
    el("form", { id: "create-bucket", onsubmit: async (ev) => {
      ev.preventDefault();
      try { await must(request("PUT", objectPath($("bname").value.trim()))); await views.Buckets(main); } catch (e) { showError(e.message); }
    } }, el("label", {}, "New bucket", el("input", { id: "bname", required: "" })), el("button", { type: "submit" }, "Create bucket")),
    el("table", { id: "buckets" }, el("tr", {}, el("th", {}, "Bucket"), el("th", {}, "Created"), el("th", {})),
      bs.map((b) => el("tr", { "data-bucket": b.name }, el("td", {}, el("a", { class: "dir", onclick: () => show("Buckets", b.name, "") }, b.name)),
        el("td", {}, b.created), el("td", {}, el("button", { class: "delbucket", onclick: async () => {
          if (!confirm(`Delete bucket ${b.name}?`)) return;
          try { await must(request("DELETE", objectPath(b.name))); await views.Buckets(main); } catch (e) { showError(e.message); }
        } }, "Delete"))))));
};
const bucketsView = views.Buckets;
views.Buckets = (main, bucket, prefix) => (bucket ? objectsView(main, bucket, prefix || "") : bucketsView(main));

async function objectsView(main, bucket, prefix, token) {
  const q = { "list-type": "2", delimiter: "/", prefix, "max-keys": "200" };
  if (token) q["continuation-token"] = token;
  const doc = await xml(request("GET", objectPath(bucket), { query: q }));
  const dirs = [...doc.getElementsByTagName("CommonPrefixes")].map((p) => tx(p, "Prefix"));
  const objs = [...doc.getElementsByTagName("Contents")].map((c) => ({ key: tx(c, "Key"), size: +tx(c, "Size"), mod: tx(c, "LastModified") }));
  const next = tx(doc, "NextContinuationToken");
  const go = (p) => show("Buckets", bucket, p);
  const parts = prefix.split("/").filter(Boolean);
  const crumbs = el("p", { class: "crumbs" }, el("button", { onclick: () => show("Buckets") }, "Buckets"), " / ",
    el("button", { onclick: () => go("") }, bucket), parts.map((p, i) => [" / ", el("button", { onclick: () => go(parts.slice(0, i + 1).join("/") + "/") }, p)]));
  const info = el("div", { id: "info" });
  const bar = el("progress", { id: "progress", max: 1, value: 0, hidden: "" }), status = el("span", { id: "upstatus" });
  const upload = el("form", { id: "upload", onsubmit: async (ev) => {
    ev.preventDefault();
    try {
      for (const f of $("file").files) await uploadFile(bucket, prefix + f.name, f, bar, status);
      await objectsView(main, bucket, prefix);
      $("upstatus").textContent = "Uploaded.";
    } catch (e) { showError("Upload failed: " + e.message); }
  } }, el("label", {}, "Upload into " + (prefix || "/"), el("input", { id: "file", type: "file", multiple: "" })), el("button", { type: "submit" }, "Upload"), bar, status);
  const search = el("form", { id: "search", onsubmit: (ev) => { ev.preventDefault(); go($("prefix").value); } },
    el("label", {}, "Prefix", el("input", { id: "prefix", value: prefix })), el("button", { type: "submit" }, "Search"));
  const row = (o) => el("tr", { "data-key": o.key }, el("td", {}, o.key.slice(prefix.length)), el("td", {}, human(o.size)), el("td", {}, o.mod),
    el("td", {}, el("button", { class: "download", onclick: () => download(bucket, o.key).catch((e) => showError(e.message)) }, "Download"), " ",
      el("button", { class: "meta", onclick: () => metadata(bucket, o.key, info).catch((e) => showError(e.message)) }, "Metadata"), " ",
      el("button", { class: "link", onclick: () => link(bucket, o.key, info).catch((e) => showError(e.message)) }, "Link"), " ",
      el("button", { class: "delete", onclick: async () => {
        if (!confirm(`Delete ${o.key}?`)) return;
        try { await must(request("DELETE", objectPath(bucket, o.key))); await objectsView(main, bucket, prefix); } catch (e) { showError(e.message); }
      } }, "Delete")));
  main.replaceChildren(el("h2", {}, "Objects"), crumbs, search, upload,
    el("table", { id: "objects" }, el("tr", {}, ["Name", "Size", "Modified", ""].map((c) => el("th", {}, c))),
      dirs.map((d) => el("tr", { "data-prefix": d }, el("td", {}, el("a", { class: "dir", onclick: () => go(d) }, d.slice(prefix.length))), el("td", {}, "folder"), el("td"), el("td"))),
      objs.map(row)),
    next ? el("button", { id: "more", onclick: () => objectsView(main, bucket, prefix, next).catch((e) => showError(e.message)) }, "Next page") : "",
    info);
}

async function uploadFile(bucket, key, file, bar, status) {
  const path = objectPath(bucket, key), type = { "content-type": file.type || "application/octet-stream" };
  bar.hidden = false; bar.value = 0; status.textContent = key;
  if (file.size <= PART) {
    await must(request("PUT", path, { body: file, headers: type }));
    bar.value = 1; return;
  }
  const id = tx(await xml(request("POST", path, { query: { uploads: true }, headers: type })), "UploadId");
  const done = [];
  try {
    for (let n = 1, off = 0; off < file.size; n++, off += PART) {
      const r = await must(request("PUT", path, { query: { partNumber: n, uploadId: id }, body: file.slice(off, off + PART) }));
      done.push(`<Part><PartNumber>${n}</PartNumber><ETag>${r.headers.get("ETag")}</ETag></Part>`);
      bar.value = Math.min(off + PART, file.size) / file.size;
      status.textContent = `${key}: part ${n}, ${human(Math.min(off + PART, file.size))} of ${human(file.size)}`;
    }
    const body = `<CompleteMultipartUpload>${done.join("")}</CompleteMultipartUpload>`;
    const r = await must(request("POST", path, { query: { uploadId: id }, body }));
    const t = await r.text();
    if (t.includes("<Error>")) throw new Error("complete: " + t);
  } catch (e) {
    await request("DELETE", path, { query: { uploadId: id } }).catch(() => {});
    throw e;
  }
}
async function download(bucket, key) {
  const blob = await (await must(request("GET", objectPath(bucket, key)))).blob();
  const a = el("a", { href: URL.createObjectURL(blob), download: key.split("/").pop() });
  document.body.append(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 60000);
}
async function metadata(bucket, key, box) {
  const r = await must(request("HEAD", objectPath(bucket, key)));
  const rows = [...r.headers.entries()].filter(([k]) => /^(content-|etag|last-modified|x-amz-)/.test(k));
  box.replaceChildren(el("h3", {}, key), el("table", { id: "metadata" }, rows.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, v)))));
}
async function link(bucket, key, box) {
  const url = await presign(bucket, key, 3600);
  const input = el("input", { id: "presigned", value: url, readonly: "", size: 80 });
  box.replaceChildren(el("h3", {}, "Presigned GET, valid 1 hour"), input,
    el("button", { onclick: () => navigator.clipboard.writeText(url).then(() => (input.title = "copied"), () => input.select()) }, "Copy"));
  navigator.clipboard && navigator.clipboard.writeText(url).catch(() => {});
}

// ---- metrics ----
let timer = null;
function stopCharts() { if (timer) clearInterval(timer); timer = null; }
function parseProm(text) {
  const out = [];
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][\w:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const l of (m[3] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return out;
}
function drawBars(canvas, title, entries, fmt) {
  const c = canvas.getContext("2d"), w = canvas.width, h = canvas.height;
  c.clearRect(0, 0, w, h); c.fillStyle = "#1d2433"; c.font = "13px sans-serif"; c.fillText(title, 8, 16);
  const max = Math.max(1, ...entries.map((e) => e[1])), bh = Math.max(8, Math.min(22, (h - 30) / Math.max(1, entries.length) - 4));
  entries.forEach(([k, v], i) => {
    const y = 26 + i * (bh + 4), bw = ((w - 260) * v) / max;
    c.fillStyle = "#1d2433"; c.fillText(k, 8, y + bh - 5);
    c.fillStyle = "#3a6fd8"; c.fillRect(130, y, bw, bh);
    c.fillStyle = "#1d2433"; c.fillText(fmt(v), 136 + bw, y + bh - 5);
  });
}
function drawLine(canvas, title, points) {
  const c = canvas.getContext("2d"), w = canvas.width, h = canvas.height;
  c.clearRect(0, 0, w, h); c.fillStyle = "#1d2433"; c.font = "13px sans-serif";
  const max = Math.max(1, ...points);
  c.fillText(`${title} (max ${max.toFixed(1)}/s)`, 8, 16);
  const bw = (w - 16) / 60;
  c.fillStyle = "#3a6fd8";
  points.forEach((v, i) => { const bh = Math.max(1, ((h - 34) * v) / max); c.fillRect(8 + i * bw, h - 8 - bh, bw - 2, bh); });
}
views.Metrics = async (main) => {
  const usage = el("canvas", { id: "usage", width: 640, height: 180 }), rate = el("canvas", { id: "rate", width: 640, height: 180 });
  const note = el("p", { class: "note", id: "metrics-note" });
  main.replaceChildren(el("h2", {}, "Usage and request rate"), note, usage, rate);
  const history = []; let last = null;
  const tick = async () => {
    if (!session || !session.root) return;
    const r = await request("GET", "/_vault/metrics"); // signed with root's keys
    if (!r.ok) { note.textContent = `Metrics unavailable: ${(await s3err(r)).message}`; return; }
    note.textContent = "Refreshed " + new Date().toLocaleTimeString() + " from this node's /_vault/metrics.";
    const ms = parseProm(await r.text());
    const stored = ms.filter((m) => m.name === "vaultaire_tenant_stored_bytes");
    drawBars(usage, "Stored bytes per tenant", stored.map((m) => [m.labels.tenant || "?", m.value]).sort((a, b) => b[1] - a[1]).slice(0, 6), human);
    const total = ms.filter((m) => m.name === "vaultaire_s3_requests_total").reduce((s, m) => s + m.value, 0), now = Date.now();
    if (last) history.push(Math.max(0, (total - last.total) / ((now - last.at) / 1000)));
    while (history.length > 60) history.shift();
    last = { total, at: now };
    drawLine(rate, "Requests/s on this node", history.length ? history : [0]);
  };
  // A first read that fails (a busy node, a dropped connection) is said in
  // the note and tried again with the others, not left as a blank tab.
  const run = () => tick().catch((e) => (note.textContent = `Metrics unavailable: ${e.message}`));
  timer = setInterval(run, 3000);
  await run();
};

document.addEventListener("DOMContentLoaded", () => {
  $("login").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  if (!window.isSecureContext || !crypto.subtle) showError("The console needs a secure context (https, or http on 127.0.0.1/localhost) for WebCrypto.");
});
})();
