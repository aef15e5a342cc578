//! Compiles the C XDP program in `bpf/` to a BPF object with BTF, so `cargo build` is all it takes.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const SOURCES: &[&str] = &["demux", "port"];

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo:rerun-if-env-changed=CLANG");
    println!("cargo:rerun-if-changed=bpf");

    let clang = find_clang().unwrap_or_else(|| {
        panic!(
            "\n\nmvdp-ebpf needs clang to compile its XDP program (ebpf/bpf/*.c) to BPF, and found none.\n\
             Install it with:  apt-get install clang-19 libbpf-dev\n\
             (or run ./scripts/deps.sh, which installs everything mvdp needs), or set CLANG=/path/to/clang.\n"
        )
    });
    // The BPF target has no multiarch include dir of its own; asm/types.h lives in the host's.
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".into());
    let multiarch = format!("/usr/include/{arch}-linux-gnu");

    if !PathBuf::from("/usr/include/bpf/bpf_helpers.h").exists() {
        panic!("\n\nmvdp-ebpf needs libbpf's BPF headers (bpf/bpf_helpers.h).\nInstall them with:  apt-get install libbpf-dev\n");
    }

    for name in SOURCES {
        let src = format!("bpf/{name}.c");
        let obj = out.join(format!("{name}.o"));
        let output = Command::new(&clang)
            .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"])
            .arg(format!("-I{multiarch}"))
            .arg("-Ibpf")
            .arg("-c")
            .arg(&src)
            .arg("-o")
            .arg(&obj)
            .output()
            .unwrap_or_else(|e| panic!("running {clang}: {e}"));
        if !output.status.success() {
            panic!(
                "{clang} failed to compile {src}:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}

fn find_clang() -> Option<String> {
    let candidates = env::var("CLANG")
        .ok()
        .into_iter()
        .chain(["clang-19", "clang"].map(String::from));
    candidates.into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    })
}
