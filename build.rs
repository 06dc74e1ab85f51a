//! Release-only link arguments for the `concession-agent` binary.
//!
//! The release profile aborts on panic (`panic = "abort"`, Cargo.toml), so nothing ever
//! unwinds and the binary's `.eh_frame` / `.eh_frame_hdr` (~380 KB, 12% of the stripped
//! terminal build) only serve `RUST_BACKTRACE=full`'s raw frame addresses: the build is
//! stripped, so a backtrace has no names either way. The panic message and location
//! are still printed, then the process aborts and systemd restarts it. Dev and test
//! builds (which unwind) keep their tables: this applies to `PROFILE=release` only, on
//! Linux with glibc (GNU ld; lld also documents `INSERT` scripts; mold does not). A
//! `cargo bench` build of the binary is also `PROFILE=release`; a panic there ends the
//! process as well ("failed to initiate panic"), which is what the release binary does.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=link/no-eh-frame.ld");
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    let linux_gnu = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|v| v == "linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").is_ok_and(|v| v == "gnu");
    if !(release && linux_gnu) {
        return;
    }
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let bin = "concession-agent";
    println!("cargo:rustc-link-arg-bin={bin}=-Wl,--no-eh-frame-hdr");
    println!("cargo:rustc-link-arg-bin={bin}=-Wl,-T,{dir}/link/no-eh-frame.ld");
}
