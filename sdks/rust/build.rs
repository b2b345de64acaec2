//! Generates the client stubs from the contract in `proto/` (the repository's proto/ folder) with
//! protox, so no system `protoc` is needed, and keeps the file descriptor set for reflection.

use std::{env, fs, path::PathBuf};

const PROTOS: &[&str] = &[
    "proto/openclinica/participants/v1/participant.proto",
    "proto/openclinica/participants/v1/participant_service.proto",
    "proto/openclinica/participants/v1/error_reason.proto",
    "proto/openclinica/participants/v1/audit_service.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let mut compiler = protox::Compiler::new(["proto"])?;
    compiler.include_source_info(true).include_imports(true);
    compiler.open_files(PROTOS)?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out_dir.join("participants_client_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;
    tonic_prost_build::configure()
        .build_server(false)
        .build_client(true)
        // google.rpc.Status is the one tonic-types already generates.
        .extern_path(".google.rpc", "::tonic_types::pb")
        .compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}
