// pacsbox: the texts page scripts write, in the user's language. The server renders the
// catalogue's script rows for the page's language into `<script type="application/json"
// id="i18n">` (English text → that language's text; `{}` for English: firmware/web/src/i18n.rs,
// `Strings::script_texts`), so there is no fetch per text. A script writes `t('Image {} / {}', a, b)`:
// the English text is the key and the fallback, so a text the block lacks (or a page, or a node
// test, without the block) stays English. A Rust test checks that the first argument of every `t` call in
// web-ui/static has its row in firmware/web/src/i18n_catalogue.rs.

let table = null;

function texts() {
  if (table) return table;
  table = {};
  const el = globalThis.document ? globalThis.document.getElementById('i18n') : null;
  if (el) {
    try {
      const parsed = JSON.parse(el.textContent || '{}');
      if (parsed && typeof parsed === 'object') table = parsed;
    } catch {
      // a broken block leaves the page in English rather than without its texts
    }
  }
  return table;
}

/** The page's language (`<html lang>`): `en` or `ko`. */
export function lang() {
  const doc = globalThis.document;
  return (doc && doc.documentElement && doc.documentElement.lang) || 'en';
}

/** `english` in the page's language, its `{}` places filled in order by `args`. */
export function t(english, ...args) {
  const text = Object.prototype.hasOwnProperty.call(texts(), english) ? texts()[english] : english;
  let i = 0;
  return String(text).replace(/\{\}/g, () => (i < args.length ? String(args[i++]) : ''));
}

/** A number as the page's language writes it (thousands grouped), `digits` after the point. */
export function num(v, digits = 0) {
  if (!Number.isFinite(v)) return '—';
  return new Intl.NumberFormat(lang(), { minimumFractionDigits: digits, maximumFractionDigits: digits }).format(v);
}
