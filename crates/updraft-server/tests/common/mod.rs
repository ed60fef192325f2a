//! Shared by the storage test binaries.

/// A bundle zip: `index.html` with `index_html`, plus `noise` bytes of
/// incompressible, seeded content (so that ranges and chunked uploads have
/// something to split).
pub fn bundle_zip(index_html: &[u8], noise: usize, seed: u64) -> Vec<u8> {
    use rand::{RngCore, SeedableRng};
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("index.html"), index_html).unwrap();
    let mut bytes = vec![0u8; noise];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut bytes);
    std::fs::write(src.path().join("noise.bin"), bytes).unwrap();
    let out = tempfile::tempdir().unwrap();
    let zip = out.path().join("bundle.zip");
    updraft_bundle::pack_dir(src.path(), &zip).unwrap();
    std::fs::read(zip).unwrap()
}
