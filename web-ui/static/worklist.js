// The worklist page's live refresh: the day's exams from /worklist.json every few seconds,
// the table rebuilt with text nodes only (names come from modalities and typing). The JSON
// keeps the exam states as keywords (`scheduled`, …); the page shows them in its language
// (i18n.js), as the server-rendered table does.
import { t } from './i18n.js';

const table = document.getElementById('worklist');
const REFRESH_MS = 3000;

function cell(tr, text, cls) {
  const td = document.createElement('td');
  if (cls) td.className = cls;
  td.textContent = text;
  tr.appendChild(td);
  return td;
}

/** An exam state keyword in the page's language (an unknown one as it came). */
function stateText(state) {
  switch (state) {
    case 'scheduled': return t('scheduled');
    case 'in progress': return t('in progress');
    case 'completed': return t('completed');
    case 'discontinued': return t('discontinued');
    case 'cancelled': return t('cancelled');
    case 'reported': return t('reported');
    default: return state;
  }
}

function render(exams) {
  const body = document.createElement('tbody');
  for (const e of exams) {
    const tr = document.createElement('tr');
    tr.dataset.accession = e.accession;
    cell(tr, e.time);
    const who = cell(tr, e.has_images ? '' : e.patient_name);
    if (e.has_images) {
      const a = document.createElement('a');
      a.href = '/study/' + e.study_uid;
      a.textContent = e.patient_name;
      who.appendChild(a);
    }
    cell(tr, e.patient_id);
    cell(tr, e.modality);
    cell(tr, e.station);
    cell(tr, e.description);
    cell(tr, e.accession);
    cell(tr, stateText(e.state), 'state');
    cell(tr, e.performed, 'performed');
    const act = cell(tr, '');
    if (e.can_stop) {
      const f = document.createElement('form');
      f.method = 'post';
      f.action = '/worklist';
      f.className = 'inline';
      for (const [k, v] of [['csrf', table.dataset.csrf], ['accession', e.accession]]) {
        const i = document.createElement('input');
        i.type = 'hidden';
        i.name = k;
        i.value = v;
        f.appendChild(i);
      }
      const b = document.createElement('button');
      b.type = 'submit';
      b.textContent = e.state === 'scheduled' ? t('Cancel') : t('Discontinue');
      f.appendChild(b);
      act.appendChild(f);
    }
    body.appendChild(tr);
  }
  if (!exams.length) {
    const tr = document.createElement('tr');
    tr.className = 'empty';
    cell(tr, t('No exams on this day.')).colSpan = 10;
    body.appendChild(tr);
  }
  table.tBodies[0].replaceWith(body);
}

async function refresh() {
  try {
    const r = await fetch('/worklist.json?date=' + encodeURIComponent(table.dataset.date), { credentials: 'same-origin' });
    if (r.ok) render((await r.json()).exams);
  } catch (_) {
    // The next tick tries again; the table keeps what it showed.
  }
  setTimeout(refresh, REFRESH_MS);
}

if (table) setTimeout(refresh, REFRESH_MS);
