//! Where the drawn screens go. Every screen is first drawn into a [`Frame`] (an in-memory
//! 128×64 one-bit framebuffer from embedded-graphics-simulator, used here headless) so that
//! an unchanged screen costs no I2C traffic and no file write. Then:
//! - [`PngPages`] writes each page as `DIR/<page>.png` plus `DIR/screen.png` (what the panel
//!   shows now) — development and tests without hardware;
//! - [`Oled`] copies the frame to an SSD1306 on Linux I2C (`/dev/i2c-1`) and dims it on
//!   request.

use std::path::{Path, PathBuf};

use embedded_graphics::pixelcolor::BinaryColor;
use embedded_graphics::prelude::*;
use embedded_graphics_simulator::SimulatorDisplay;
use pacsbox_health::Health;

use crate::pages::{self, Page, Screen};
use crate::{Language, PanelError};

/// One panel-sized framebuffer.
pub type Frame = SimulatorDisplay<BinaryColor>;

pub fn blank_frame() -> Frame {
    SimulatorDisplay::new(Size::new(pages::WIDTH, pages::HEIGHT))
}

/// Draws `screen` in `lang` into a fresh frame. Drawing into memory cannot fail; what did
/// not fit is logged (the golden tests keep it from happening on the screens they know).
pub fn render(screen: &Screen, health: &Health, lang: Language) -> Frame {
    let mut frame = blank_frame();
    match pages::draw(screen, health, lang, &mut frame) {
        Ok(cut) if cut.is_empty() => {}
        Ok(cut) => tracing::debug!(?cut, "front panel: text did not fit"),
        Err(never) => match never {},
    }
    frame
}

/// PNG bytes of a frame: lit pixels white on black (8-bit grey), each panel pixel
/// `scale`×`scale` (1 for exact pixels, more for people to look at).
pub fn png_bytes(frame: &Frame, scale: u32) -> Result<Vec<u8>, PanelError> {
    let scale = scale.max(1);
    let (w, h) = (pages::WIDTH * scale, pages::HEIGHT * scale);
    let mut grey = Vec::with_capacity((w * h) as usize);
    for y in 0..h {
        for x in 0..w {
            let p = Point::new((x / scale) as i32, (y / scale) as i32);
            grey.push(if frame.get_pixel(p) == BinaryColor::On {
                255
            } else {
                0
            });
        }
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, w, h);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&grey)?;
    writer.finish()?;
    Ok(out)
}

/// Reads a PNG written by [`png_bytes`] (scale 1) back into a frame: any grey above half is lit.
pub fn frame_from_png(bytes: &[u8]) -> Result<Frame, PanelError> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info()?;
    let mut buf = vec![0; reader.output_buffer_size().unwrap_or(0)];
    let info = reader.next_frame(&mut buf)?;
    if (info.width, info.height) != (pages::WIDTH, pages::HEIGHT) {
        return Err(PanelError::PngSize(info.width, info.height));
    }
    let channels = info.color_type.samples();
    let mut frame = blank_frame();
    for y in 0..info.height {
        for x in 0..info.width {
            let i = (y as usize * info.line_size) + x as usize * channels;
            if buf.get(i).copied().unwrap_or(0) > 127 {
                let lit = Pixel(Point::new(x as i32, y as i32), BinaryColor::On);
                match frame.draw_iter([lit]) {
                    Ok(()) => {}
                    Err(never) => match never {},
                }
            }
        }
    }
    Ok(frame)
}

/// Writes `bytes` to `path` by rename, so a viewer never reads half a PNG.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), PanelError> {
    let tmp = path.with_extension("png.tmp");
    std::fs::write(&tmp, bytes).map_err(|e| PanelError::Io(tmp.clone(), e))?;
    std::fs::rename(&tmp, path).map_err(|e| PanelError::Io(path.to_owned(), e))
}

/// `--panel png:DIR`: every page and the current screen as PNG files, rewritten when changed.
pub struct PngPages {
    dir: PathBuf,
    lang: Language,
    last: Vec<(String, Frame)>,
}

impl PngPages {
    pub fn new(dir: PathBuf, lang: Language) -> Result<PngPages, PanelError> {
        std::fs::create_dir_all(&dir).map_err(|e| PanelError::Io(dir.clone(), e))?;
        Ok(PngPages {
            dir,
            lang,
            last: Vec::new(),
        })
    }

    pub fn show(&mut self, screen: &Screen, health: &Health) -> Result<(), PanelError> {
        let mut frames: Vec<(String, Frame)> = Page::ALL
            .iter()
            .map(|p| {
                (
                    p.name().to_owned(),
                    render(&Screen::Page(*p), health, self.lang),
                )
            })
            .collect();
        frames.push(("screen".to_owned(), render(screen, health, self.lang)));
        for (name, frame) in &frames {
            let unchanged = self.last.iter().any(|(n, f)| n == name && f == frame);
            if !unchanged {
                let path = self.dir.join(format!("{name}.png"));
                write_atomically(&path, &png_bytes(frame, 1)?)?;
            }
        }
        self.last = frames;
        Ok(())
    }
}

type I2cOled = ssd1306::Ssd1306<
    ssd1306::prelude::I2CInterface<linux_embedded_hal::I2cdev>,
    ssd1306::size::DisplaySize128x64,
    ssd1306::mode::BufferedGraphicsMode<ssd1306::size::DisplaySize128x64>,
>;

/// `--panel ssd1306:/dev/i2c-1`: the 128×64 OLED.
pub struct Oled {
    display: I2cOled,
    device: PathBuf,
    last: Option<Frame>,
    dimmed: Option<bool>,
}

impl Oled {
    pub fn open(device: &Path, address: u8) -> Result<Oled, PanelError> {
        use ssd1306::prelude::*;
        let i2c = linux_embedded_hal::I2cdev::new(device)
            .map_err(|e| PanelError::Device(device.to_owned(), e.to_string()))?;
        let interface = ssd1306::I2CDisplayInterface::new_custom_address(i2c, address);
        let mut display = ssd1306::Ssd1306::new(
            interface,
            ssd1306::size::DisplaySize128x64,
            DisplayRotation::Rotate0,
        )
        .into_buffered_graphics_mode();
        // The first write is where a missing or unpowered display shows itself.
        display
            .init()
            .map_err(|e| PanelError::Device(device.to_owned(), format!("{e:?}")))?;
        Ok(Oled {
            display,
            device: device.to_owned(),
            last: None,
            dimmed: None,
        })
    }

    pub fn show(&mut self, frame: &Frame, dimmed: bool) -> Result<(), PanelError> {
        let err = |e: display_interface::DisplayError| {
            PanelError::Device(self.device.clone(), format!("{e:?}"))
        };
        if self.dimmed != Some(dimmed) {
            let level = if dimmed {
                ssd1306::prelude::Brightness::DIMMEST
            } else {
                ssd1306::prelude::Brightness::NORMAL
            };
            self.display.set_brightness(level).map_err(err)?;
            self.dimmed = Some(dimmed);
        }
        if self.last.as_ref() == Some(frame) {
            return Ok(());
        }
        self.display.clear_buffer();
        for y in 0..pages::HEIGHT {
            for x in 0..pages::WIDTH {
                let on = frame.get_pixel(Point::new(x as i32, y as i32)) == BinaryColor::On;
                self.display.set_pixel(x, y, on);
            }
        }
        self.display.flush().map_err(err)?;
        self.last = Some(frame.clone());
        Ok(())
    }
}
