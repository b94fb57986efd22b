// The import page: upload the ZIP as the raw request body (or, from the status page's link,
// list media inserted into the box), list its studies, start the import of the chosen ones
// and poll its progress until it finishes. Its lines are in the page's language (i18n.js).

import { num, t } from "./i18n.js";

const form = document.getElementById("upload-form");
const status = document.getElementById("upload-status");
const choose = document.getElementById("choose-form");
const tbody = document.getElementById("studies");
const progress = document.getElementById("progress");
const errors = document.getElementById("errors");
const done = document.getElementById("done");
const csrf = form.dataset.csrf;
let job = null;

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.appendChild(td);
}

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  const file = document.getElementById("upload-file").files[0];
  if (!file) return;
  status.textContent = t("Uploading {}…", file.name);
  const r = await fetch("/admin/import/upload", {
    method: "POST",
    body: file,
    headers: { "X-CSRF-Token": csrf, "Content-Type": "application/zip" },
  });
  if (!r.ok) {
    status.textContent = t("Upload refused: {}", `${r.status} ${await r.text()}`);
    return;
  }
  show(await r.json());
});

function show(list) {
  job = list.job;
  status.textContent = t("{} file(s), {} study(ies) found", num(list.files), num(list.studies.length)) +
    (list.missing.length ? t("; {} listed in DICOMDIR but missing", num(list.missing.length)) : "");
  tbody.replaceChildren();
  for (const s of list.studies) {
    const row = document.createElement("tr");
    const td = document.createElement("td");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.checked = true;
    box.value = s.study_uid;
    box.name = "study";
    td.appendChild(box);
    row.appendChild(td);
    cell(row, s.patient_name);
    cell(row, s.patient_id);
    cell(row, s.study_date);
    cell(row, s.description);
    cell(row, num(s.files));
    tbody.appendChild(row);
  }
  choose.hidden = false;
}

choose.addEventListener("submit", async (e) => {
  e.preventDefault();
  const studies = [...tbody.querySelectorAll("input:checked")].map((b) => b.value);
  const body = new URLSearchParams({ csrf, job: String(job), studies: studies.join(" ") });
  if (document.getElementById("reconcile").checked) {
    body.set("reconcile_patient_id", document.getElementById("reconcile-id").value.trim());
  }
  const r = await fetch("/admin/import", { method: "POST", body });
  if (!r.ok) {
    progress.textContent = t("Refused: {}", `${r.status} ${await r.text()}`);
    return;
  }
  choose.hidden = true;
  poll();
});

async function poll() {
  const r = await fetch(`/admin/import/progress?job=${job}`);
  if (!r.ok) {
    progress.textContent = t("Progress unavailable: {}", r.status);
    return;
  }
  const p = await r.json();
  progress.textContent = t("{} / {} files, {} MB/s, {} failed", num(p.done), num(p.total), num(p.mb_per_s, 1), num(p.failed.length)) +
    (p.finished ? t(" — finished: {}", p.summary) : "");
  errors.replaceChildren();
  for (const [file, why] of p.failed) {
    const li = document.createElement("li");
    li.textContent = `${file}: ${why}`;
    errors.appendChild(li);
  }
  if (p.finished) {
    done.hidden = false;
    progress.dataset.finished = "1";
  } else {
    setTimeout(poll, 500);
  }
}

// Media inserted into the box: listed at once, nothing uploaded.
const inserted = document.getElementById("media-inserted");
if (inserted) {
  status.textContent = t("Reading {}…", inserted.dataset.media);
  const r = await fetch("/admin/import/media", {
    method: "POST",
    body: new URLSearchParams({ csrf, media: inserted.dataset.media }),
  });
  if (r.ok) {
    show(await r.json());
  } else {
    status.textContent = t("Media not readable: {}", `${r.status} ${await r.text()}`);
  }
}
