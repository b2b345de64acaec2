//! Compiles the contract under `proto/` with protox (no system `protoc` needed) and keeps the
//! file descriptor set, comments included, for server reflection.

use std::{env, fs, path::PathBuf};

const PROTOS: &[&str] = &[
    "proto/openclinica/participants/v1/participant.proto",
    "proto/openclinica/participants/v1/participant_service.proto",
    "proto/openclinica/participants/v1/error_reason.proto",
    "proto/openclinica/participants/v1/audit_service.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // tonic-prost-build 0.14 does not emit these itself.
    println!("cargo:rerun-if-changed=proto");
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }

    let mut compiler = protox::Compiler::new(["proto"])?;
    compiler.include_source_info(true).include_imports(true);
    compiler.open_files(PROTOS)?;

    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out_dir.join("participants_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;
    tonic_prost_build::configure()
        // google.rpc.Status is the one tonic-types already generates.
        .extern_path(".google.rpc", "::tonic_types::pb")
        .compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}
