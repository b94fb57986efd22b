// The page of an "anonymize as new study" run: polls its progress and, once the run ended,
// reloads the page, which then shows the result. Its count is in the page's language (i18n.js).

import { t } from "./i18n.js";

const card = document.getElementById("anonymizing");
const bar = document.getElementById("anonymize-progress");
const count = document.getElementById("anonymize-count");
const job = card.dataset.job;

async function poll() {
  try {
    const r = await fetch(`/anonymize/${job}/progress`, { cache: "no-store" });
    if (r.ok) {
      const p = await r.json();
      bar.max = p.total;
      bar.value = p.done;
      count.textContent = t("{} of {}", p.done, p.total);
      if (p.finished) {
        location.reload();
        return;
      }
    }
  } catch (_e) {
    // The box may be busy; try again.
  }
  setTimeout(poll, 500);
}

setTimeout(poll, 300);
