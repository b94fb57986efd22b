//! 12-bit JPEG (DCT, Extended process 2/4: 1.2.840.10008.1.2.4.51) through libjpeg-turbo 3's
//! TurboJPEG API, which dicom-pixeldata's pure-Rust decoder refuses. libjpeg-turbo is built
//! from the sources vendored in turbojpeg-sys (cmake), so nothing is needed on the target.

use std::ffi::{CStr, c_int};

use turbojpeg_sys as tj;

use crate::ImagingError;
use crate::decode::{Attrs, Frame};

/// Frees the handle however decoding ends.
struct Handle(tj::tjhandle);

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the handle came from tj3Init and is destroyed once.
        unsafe { tj::tj3Destroy(self.0) }
    }
}

impl Handle {
    fn error(&self, what: &str) -> ImagingError {
        // SAFETY: tj3GetErrorStr returns a NUL-terminated string owned by the handle.
        let msg = unsafe {
            let p = tj::tj3GetErrorStr(self.0);
            if p.is_null() {
                String::from("unknown error")
            } else {
                CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        };
        ImagingError::Corrupt(format!("12-bit JPEG {what}: {msg}"))
    }

    fn get(&self, param: tj::TJPARAM) -> c_int {
        // SAFETY: valid handle; an unknown parameter returns -1.
        unsafe { tj::tj3Get(self.0, param as c_int) }
    }
}

/// Decodes one frame's JPEG stream into 16-bit little-endian samples (gray or interleaved RGB).
pub(crate) fn decode(jpeg: &[u8], a: &Attrs) -> Result<Frame, ImagingError> {
    // SAFETY: plain constructor; null on failure.
    let raw = unsafe { tj::tj3Init(tj::TJINIT_TJINIT_DECOMPRESS as c_int) };
    if raw.is_null() {
        return Err(ImagingError::Corrupt(
            "libjpeg-turbo could not start a decompressor".into(),
        ));
    }
    let h = Handle(raw);
    // SAFETY: the pointer and length describe `jpeg`, which outlives the call.
    if unsafe { tj::tj3DecompressHeader(h.0, jpeg.as_ptr(), jpeg.len() as _) } != 0 {
        return Err(h.error("header"));
    }
    let width = h.get(tj::TJPARAM_TJPARAM_JPEGWIDTH);
    let height = h.get(tj::TJPARAM_TJPARAM_JPEGHEIGHT);
    let precision = h.get(tj::TJPARAM_TJPARAM_PRECISION);
    if width as u32 != a.cols || height as u32 != a.rows {
        return Err(ImagingError::Corrupt(format!(
            "JPEG stream is {width}×{height}, the attributes say {}×{}",
            a.cols, a.rows
        )));
    }
    if precision != 12 {
        return Err(ImagingError::Corrupt(format!(
            "expected a 12-bit JPEG stream, found {precision}-bit"
        )));
    }
    let (format, samples) = if a.samples == 3 {
        (tj::TJPF_TJPF_RGB, 3usize)
    } else {
        (tj::TJPF_TJPF_GRAY, 1usize)
    };
    let count = width as usize * height as usize * samples;
    let mut out = vec![0i16; count];
    // SAFETY: `out` holds width×height×samples 16-bit samples; pitch 0 means tightly packed.
    let rc = unsafe {
        tj::tj3Decompress12(
            h.0,
            jpeg.as_ptr(),
            jpeg.len() as _,
            out.as_mut_ptr(),
            0,
            format as c_int,
        )
    };
    if rc != 0 {
        return Err(h.error("decoding"));
    }
    let mut data = Vec::with_capacity(count * 2);
    for v in out {
        data.extend_from_slice(&v.to_le_bytes());
    }
    Ok(Frame::decoded(a, 16, data))
}
