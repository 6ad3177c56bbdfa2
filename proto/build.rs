//! Compiles every `.proto` file of `proto/onem2m/authz/v1` with protox (no
//! system `protoc` needed), writes the encoded descriptor set to
//! `$OUT_DIR/onem2m_authz_descriptor.bin` for gRPC reflection, and generates
//! the prost messages and tonic clients and servers.
//!
//! New files in that directory (the service definitions of later issues) are
//! picked up without changes here.

use std::path::{Path, PathBuf};

use prost::Message;

const INCLUDE: &str = "proto";
const PACKAGE_DIR: &str = "proto/onem2m/authz/v1";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={INCLUDE}");
    println!("cargo:rerun-if-changed={PACKAGE_DIR}");

    let mut files: Vec<PathBuf> = std::fs::read_dir(PACKAGE_DIR)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|p| p.extension().is_some_and(|ext| ext == "proto"));
    files.sort();
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let files: Vec<&Path> = files
        .iter()
        .map(|p| p.strip_prefix(INCLUDE).expect("under the include dir"))
        .collect();

    // Google's well-known types are built into protox.
    let fds = protox::compile(&files, [INCLUDE])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    // compile_fds does not write the descriptor set; reflection needs it.
    std::fs::write(out.join("onem2m_authz_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
