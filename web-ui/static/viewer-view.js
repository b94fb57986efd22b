// Where the image sits on the stage: zoom (relative to "fit in the stage"), pan, rotation and
// flips, and the one canvas transform they make.

const ZOOM_MIN = 0.05;
const ZOOM_MAX = 40;

export class View {
  constructor() {
    this.reset();
  }

  reset() {
    this.zoom = 1;
    this.panX = 0; // CSS pixels
    this.panY = 0;
    this.rotation = 0; // 0, 90, 180, 270 clockwise
    this.flipH = false;
    this.flipV = false;
  }

  /** Scale at zoom 1: the (rotated) image fits a `cw`×`ch` stage. */
  fitScale(cw, ch, dims) {
    const quarter = this.rotation === 90 || this.rotation === 270;
    const w = quarter ? dims.h : dims.w;
    const h = quarter ? dims.w : dims.h;
    return Math.min(cw / w, ch / h);
  }

  /** Zoom by factor f from (fromZoom, fromPan) keeping the stage point q (CSS px) where it is. */
  zoomAbout(f, q, cw, ch, fromZoom = this.zoom, fromPan = { x: this.panX, y: this.panY }) {
    const z = Math.max(ZOOM_MIN, Math.min(ZOOM_MAX, fromZoom * f));
    const g = z / fromZoom;
    this.panX = (1 - g) * (q.x - cw / 2) + g * fromPan.x;
    this.panY = (1 - g) * (q.y - ch / 2) + g * fromPan.y;
    this.zoom = z;
  }

  /** Image space → canvas device pixels for a `W`×`H` canvas at `scale` device px per image px. */
  matrix(W, H, dpr, scale, dims) {
    return new DOMMatrix()
      .translate(W / 2 + this.panX * dpr, H / 2 + this.panY * dpr)
      .scale(this.flipH ? -1 : 1, this.flipV ? -1 : 1)
      .rotate(this.rotation)
      .scale(scale)
      .translate(-dims.w / 2, -dims.h / 2);
  }
}
