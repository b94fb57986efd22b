// The viewer's requests: the API's URLs (docs/web-api.md), one fetch helper whose failures
// carry the server's own text, and how such a failure is worded for staff.

import { t } from './i18n.js';

const PREVIEW_MAX = 512;

export class HttpError extends Error {
  constructor(status, text, url) {
    super(`${status} ${text}`.trim());
    this.status = status;
    this.text = text;
    this.url = url;
  }
}

/** A load the viewer gave up because the user moved on: not an error to show. */
export const isAbort = (e) => !!e && e.name === 'AbortError';

export async function get(url, what, signal = undefined) {
  let r;
  try {
    r = await fetch(url, { credentials: 'same-origin', headers: { Accept: what }, signal });
  } catch (e) {
    if (isAbort(e)) throw e;
    throw new HttpError(0, `network error: ${e.message}`, url);
  }
  if (!r.ok) {
    let text = '';
    try {
      text = (await r.text()).trim().slice(0, 400);
    } catch (_e) {
      /* body unreadable */
    }
    if (r.status === 401) text = 'your session has ended — log in again';
    throw new HttpError(r.status, text || r.statusText, url);
  }
  return r;
}

export const api = Object.freeze({
  series: (study) => `/api/studies/${encodeURIComponent(study)}/series`,
  priors: (study) => `/api/studies/${encodeURIComponent(study)}/priors`,
  thumbnail: (series) => `/api/series/${encodeURIComponent(series)}/thumbnail.png`,
  viewer: (study) => `/viewer/${encodeURIComponent(study)}?embed=1`,
  info: (sop) => `/api/instances/${encodeURIComponent(sop)}/info`,
  preview: (sop, f) => `/api/instances/${encodeURIComponent(sop)}/frames/${f}/preview.png?max=${PREVIEW_MAX}`,
  // 16-bit samples travel as planes of prediction residuals (LOCO-I's median edge detector):
  // the smallest gzip of the layouts (viewer-cache.js `unMed`; docs/web-api.md)
  pixels: (sop, f) => `/api/instances/${encodeURIComponent(sop)}/frames/${f}/pixels?layout=med`,
});

export function describe(err) {
  if (!err) return '';
  if (err instanceof HttpError) {
    if (err.status === 415) return t('This image cannot be decoded here (415): {}', err.text);
    if (err.status === 422) return t('This image has no usable pixel data (422): {}', err.text);
    if (err.status === 0) return t('The server did not answer: {}', err.text);
    return t('Error {}: {}', err.status, err.text);
  }
  return String(err.message || err);
}
