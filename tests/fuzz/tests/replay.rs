//! Every seed and every regression input through its target without instrumentation: the
//! targets keep compiling and the inputs that once failed keep passing (`cargo test` here).

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            let bytes = std::fs::read(&path).expect("an input file");
            eprintln!("{}", path.display());
            run(&bytes);
            n += 1;
        }
    }
    assert!(n > 0, "no inputs for {target}");
}

#[test]
fn pdu() {
    replay("pdu", pacsbox_fuzz::pdu);
}

#[test]
fn scan() {
    replay("scan", pacsbox_fuzz::scan);
}

#[test]
fn charset() {
    replay("charset", pacsbox_fuzz::charset);
}

#[test]
fn identifier() {
    replay("identifier", pacsbox_fuzz::identifier);
}

#[test]
fn deid() {
    replay("deid", pacsbox_fuzz::deid);
}

#[test]
fn http_head() {
    replay("http_head", pacsbox_fuzz::http_head);
}
