//! Times `Instance::read`, `preview` and `pixels` on the files given (median of N runs), for
//! bench/imaging/run.sh. Usage: preview_timing MAX_DIM RUNS FILE...

use std::time::Instant;

use pacsbox_imaging::Instance;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [max_dim, runs, files @ ..] = &args[..] else {
        return Err("usage: preview_timing MAX_DIM RUNS FILE...".into());
    };
    let max_dim: u32 = max_dim.parse()?;
    let runs: usize = runs.parse()?;
    println!("file\tsize\tread_ms\tpreview_ms\tread+preview_ms\tpixels_ms\tpng_bytes");
    for f in files {
        let bytes = std::fs::read(f)?;
        let (mut read, mut prev, mut total, mut pix) = (vec![], vec![], vec![], vec![]);
        let mut png_len = 0;
        let mut size = String::new();
        for _ in 0..runs {
            let t0 = Instant::now();
            let inst = Instance::read(&bytes[..])?;
            let t1 = Instant::now();
            let png = inst.preview(0, max_dim)?;
            let t2 = Instant::now();
            inst.pixels(0)?;
            let t3 = Instant::now();
            read.push((t1 - t0).as_secs_f64() * 1e3);
            prev.push((t2 - t1).as_secs_f64() * 1e3);
            total.push((t2 - t0).as_secs_f64() * 1e3);
            pix.push((t3 - t2).as_secs_f64() * 1e3);
            png_len = png.len();
            let i = inst.info();
            size = format!("{}x{}x{}bit", i.columns, i.rows, i.bits_stored);
        }
        let name = std::path::Path::new(f)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        println!(
            "{name}\t{size}\t{:.1}\t{:.1}\t{:.1}\t{:.1}\t{png_len}",
            median(read),
            median(prev),
            median(total),
            median(pix)
        );
    }
    Ok(())
}
