//! Test helpers: a hand-written zip writer for archives the `zip` crate refuses to
//! produce (unsafe names, symlinks, data descriptors, lying headers...).
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// One entry of a raw zip; `data` is written as-is (already compressed if `method` is not 0).
#[derive(Clone)]
pub struct RawEntry {
    pub name: Vec<u8>,
    /// Name in the local header when it must differ from the central directory.
    pub local_name: Option<Vec<u8>>,
    pub method: u16,
    pub flags: u16,
    pub data: Vec<u8>,
    pub crc: u32,
    pub uncompressed_size: u32,
    pub external_attributes: u32,
    /// High byte of "version made by": 3 = Unix (needed for unix modes to count).
    pub made_by_system: u8,
}

impl RawEntry {
    /// A STORED file with correct CRC and sizes.
    pub fn stored(name: impl AsRef<[u8]>, data: impl AsRef<[u8]>) -> Self {
        let data = data.as_ref().to_vec();
        RawEntry {
            name: name.as_ref().to_vec(),
            local_name: None,
            method: 0,
            flags: 0,
            crc: crc32(&data),
            uncompressed_size: data.len() as u32,
            data,
            external_attributes: 0o100644 << 16,
            made_by_system: 3,
        }
    }

    pub fn dir(name: &str) -> Self {
        let mut entry = RawEntry::stored(name, b"");
        entry.external_attributes = (0o040755 << 16) | 0x10;
        entry
    }
}

pub fn raw_zip(entries: &[RawEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for entry in entries {
        let offset = out.len() as u32;
        let local_name = entry.local_name.as_ref().unwrap_or(&entry.name);
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        out.extend_from_slice(&20u16.to_le_bytes());
        out.extend_from_slice(&entry.flags.to_le_bytes());
        out.extend_from_slice(&entry.method.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes()); // time
        out.extend_from_slice(&0x21u16.to_le_bytes()); // date 1980-01-01
        let descriptor = entry.flags & 0x0008 != 0;
        let (crc, csize, usize_) = if descriptor {
            (0, 0, 0)
        } else {
            (entry.crc, entry.data.len() as u32, entry.uncompressed_size)
        };
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&csize.to_le_bytes());
        out.extend_from_slice(&usize_.to_le_bytes());
        out.extend_from_slice(&(local_name.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(local_name);
        out.extend_from_slice(&entry.data);
        if descriptor {
            out.extend_from_slice(&0x0807_4b50u32.to_le_bytes());
            out.extend_from_slice(&entry.crc.to_le_bytes());
            out.extend_from_slice(&(entry.data.len() as u32).to_le_bytes());
            out.extend_from_slice(&entry.uncompressed_size.to_le_bytes());
        }
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&((u16::from(entry.made_by_system) << 8) | 20).to_le_bytes());
        central.extend_from_slice(&20u16.to_le_bytes());
        central.extend_from_slice(&entry.flags.to_le_bytes());
        central.extend_from_slice(&entry.method.to_le_bytes());
        central.extend_from_slice(&0u16.to_le_bytes());
        central.extend_from_slice(&0x21u16.to_le_bytes());
        central.extend_from_slice(&entry.crc.to_le_bytes());
        central.extend_from_slice(&(entry.data.len() as u32).to_le_bytes());
        central.extend_from_slice(&entry.uncompressed_size.to_le_bytes());
        central.extend_from_slice(&(entry.name.len() as u16).to_le_bytes());
        central.extend_from_slice(&0u16.to_le_bytes()); // extra
        central.extend_from_slice(&0u16.to_le_bytes()); // comment
        central.extend_from_slice(&0u16.to_le_bytes()); // disk
        central.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
        central.extend_from_slice(&entry.external_attributes.to_le_bytes());
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(&entry.name);
    }
    let central_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&central_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

pub fn write_raw_zip(dir: &Path, file_name: &str, entries: &[RawEntry]) -> PathBuf {
    let path = dir.join(file_name);
    std::fs::write(&path, raw_zip(entries)).unwrap();
    path
}

/// A zip written by the `zip` crate with DEFLATE, for cases that need real compression.
pub fn deflated_zip(dir: &Path, file_name: &str, files: &[(&str, &[u8])]) -> PathBuf {
    let path = dir.join(file_name);
    let mut writer = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in files {
        writer.start_file(*name, options).unwrap();
        writer.write_all(data).unwrap();
    }
    writer.finish().unwrap();
    path
}

/// Overwrites the declared uncompressed size of every entry named `name`, in both the
/// local header and the central directory, leaving the data untouched.
pub fn patch_uncompressed_size(path: &Path, name: &str, new_size: u32) {
    let mut bytes = std::fs::read(path).unwrap();
    let mut patched = 0;
    let mut position = 0;
    while position + 46 <= bytes.len() {
        let signature = u32::from_le_bytes(bytes[position..position + 4].try_into().unwrap());
        let (size_at, name_len_at, name_at) = match signature {
            0x0403_4b50 => (22, 26, 30),
            0x0201_4b50 => (24, 28, 46),
            _ => {
                position += 1;
                continue;
            }
        };
        let name_len = u16::from_le_bytes(
            bytes[position + name_len_at..position + name_len_at + 2]
                .try_into()
                .unwrap(),
        ) as usize;
        if bytes.get(position + name_at..position + name_at + name_len) == Some(name.as_bytes()) {
            bytes[position + size_at..position + size_at + 4]
                .copy_from_slice(&new_size.to_le_bytes());
            patched += 1;
        }
        position += 4;
    }
    assert_eq!(
        patched, 2,
        "expected a local and a central header for {name}"
    );
    std::fs::write(path, bytes).unwrap();
}

/// Writes `files` (relative path → content) under `root`.
pub fn write_tree(root: &Path, files: &[(&str, &[u8])]) {
    for (name, data) in files {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    }
}
