//! Crafting the cases of one rule per field (issue 10, format precision): spellings the old
//! reader let through that the writer never makes. Where `bundle.json` changes, it is re-signed
//! with the release key itself, so only the rule under test can reject it.

use sensei_core::signature::{PrivateKey, signature_file_bytes};

use super::*;

/// Builds the hostile bundle for one of the format-precision cases.
pub(super) fn craft_precision_case(case: Case, b: &Built, mut e: Vec<Entry>) -> Attempt {
    match case {
        Case::ChecksumSpareBytes | Case::ChecksumBase256 => {
            let i = index_of(&e, "index.json");
            let at = craft::header_offset(&e, i);
            let mut header = e[i].header();
            let sum = craft::checksum(&header);
            let field: Vec<u8> = if case == Case::ChecksumSpareBytes {
                assert!(sum < 0o100000, "five digits hold the sum {sum}");
                format!("{sum:05o}\0XY").into_bytes()
            } else {
                let mut f = vec![0x80];
                f.extend_from_slice(&sum.to_be_bytes()[1..]);
                f
            };
            header[148..156].copy_from_slice(&field);
            let mut tar = craft::write(&e);
            tar[at..at + BLOCK].copy_from_slice(&header);
            let path = write_file(b, "hostile.tar", &tar);
            Attempt::new(
                b,
                path,
                format!(
                    "corrupt tar header at byte {at}: header checksum field is not six octal digits, a NUL and a space"
                ),
            )
        }
        Case::NullExpires => {
            let mut manifest = manifest_value(&e);
            manifest["expires"] = serde_json::Value::Null;
            resign(b, &mut e, &manifest);
            Attempt::new(
                b,
                write_tar(b, &e),
                "expires is null: an optional field is omitted when it has no value, never null",
            )
        }
        Case::CreatedWithSpace => {
            let mut manifest = manifest_value(&e);
            let created = manifest["created"]
                .as_str()
                .expect("created")
                .replace('T', " ");
            manifest["created"] = created.clone().into();
            resign(b, &mut e, &manifest);
            Attempt::new(
                b,
                write_tar(b, &e),
                format!("bundle.json: created {created:?} is not of the form YYYY-MM-DDTHH:MM:SSZ"),
            )
        }
        Case::ExpiresOnLeapSecond => {
            let mut manifest = manifest_value(&e);
            manifest["expires"] = "2099-12-31T23:59:60Z".into();
            resign(b, &mut e, &manifest);
            Attempt::new(
                b,
                write_tar(b, &e),
                "bundle.json: expires \"2099-12-31T23:59:60Z\" is a leap second (:60); leap seconds are not allowed",
            )
        }
        Case::IndexDuplicateKey => {
            let i = index_of(&e, "index.json");
            let text = String::from_utf8(e[i].body.clone()).expect("index.json is UTF-8");
            let key = "\"org.opencontainers.image.ref.name\":";
            let at = text.find(key).expect("index.json names an image");
            // One key more before the real one: a first-wins reader sees `evil`, the old
            // verifier (last wins) saw the listed image and accepted.
            let evil = format!("{key}\"registry.example.com/evil:1\",");
            let text = format!("{}{evil}{}", &text[..at], &text[at..]);
            e[i].body = text.into_bytes();
            let mut manifest = manifest_value(&e);
            let files = manifest["files"].as_array_mut().expect("files");
            let listed = files
                .iter_mut()
                .find(|f| f["path"] == "index.json")
                .expect("index.json is listed");
            listed["size"] = e[i].body.len().into();
            listed["sha256"] = sha256_hex(&e[i].body).into();
            resign(b, &mut e, &manifest);
            Attempt::new(
                b,
                write_tar(b, &e),
                "index.json is not an OCI index as format v1 reads it (FORMAT.md §8 step 8): the key \"org.opencontainers.image.ref.name\" appears twice",
            )
        }
        other => unreachable!("{other:?} is not a format-precision case"),
    }
}

fn manifest_value(e: &[Entry]) -> serde_json::Value {
    serde_json::from_slice(&e[0].body).expect("bundle.json is JSON")
}

/// Replaces `bundle.json` with `manifest` and `bundle.sig` with a signature over it by the
/// release key: the verifier trusts it, so what rejects it is the content.
fn resign(b: &Built, e: &mut [Entry], manifest: &serde_json::Value) {
    e[0].body = serde_json::to_vec_pretty(manifest).expect("serialise");
    let pem = std::fs::read_to_string(&b.key).expect("read the release key");
    let key = PrivateKey::from_pem(&pem).expect("the release key parses");
    e[1].body = signature_file_bytes(&[key.sign(&e[0].body)]);
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}
