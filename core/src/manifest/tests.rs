use super::*;

/// A small valid manifest: one image, whose digest is also its only blob. Shared with the
/// verifier's `index.json` tests.
pub(crate) fn sample() -> BundleManifest {
    let blob = Digest::of(b"x");
    BundleManifest {
        schema_version: 1,
        media_type: MEDIA_TYPE.into(),
        name: "demo".into(),
        version: "1.2.0".parse().unwrap(),
        created: "2026-01-01T00:00:00Z".into(),
        expires: None,
        compat: Compat {
            upgrade_from: ">=1.1.0, <1.3.0".into(),
        },
        images: vec![ImageEntry {
            reference: "r.example/a:1".into(),
            digest: blob,
            media_type: crate::oci::OCI_MANIFEST.into(),
            size: 1,
            platforms: vec![],
            filtered_from: None,
            source: None,
        }],
        charts: vec![],
        files: vec![
            FileEntry {
                path: "oci-layout".into(),
                size: 1,
                sha256: blob.hex(),
            },
            FileEntry {
                path: "index.json".into(),
                size: 1,
                sha256: blob.hex(),
            },
            FileEntry {
                path: blob.blob_path(),
                size: 1,
                sha256: blob.hex(),
            },
        ],
    }
}

#[test]
fn round_trips_through_bytes() {
    let m = sample();
    assert_eq!(BundleManifest::from_slice(&m.to_bytes()).unwrap(), m);
}

#[test]
fn rejects_bad_paths() {
    for p in [
        "../x",
        "/etc/passwd",
        "a//b",
        "a/./b",
        "a b",
        "",
        "blobs/sha256/../../x",
    ] {
        assert!(check_path(p).is_err(), "{p:?} should be rejected");
    }
    check_path("blobs/sha256/abc").unwrap();
}

#[test]
fn rejects_duplicates_unknown_fields_and_misnamed_blobs() {
    let mut m = sample();
    m.files.push(m.files[0].clone());
    assert!(matches!(m.check(), Err(ManifestError::DuplicatePath(_))));

    let mut m = sample();
    m.files[2].sha256 = Digest::of(b"y").hex();
    assert!(matches!(
        m.check(),
        Err(ManifestError::BlobNameMismatch { .. })
    ));

    let mut v: serde_json::Value = serde_json::from_slice(&sample().to_bytes()).unwrap();
    v["surprise"] = 1.into();
    let err = BundleManifest::from_slice(&serde_json::to_vec(&v).unwrap()).unwrap_err();
    assert!(err.to_string().contains("surprise"), "{err}");
}

#[test]
fn optional_fields_are_omitted_never_null() {
    let mut m = sample();
    m.expires = Some("2027-01-01T00:00:00Z".into());
    m.images[0].filtered_from = Some(Digest::of(b"published index"));
    m.images[0].source = Some("oci-layout:/build/oci:a:1".into());
    m.charts.push(ChartEntry {
        name: "demo".into(),
        version: "1.2.0".parse().unwrap(),
        reference: "charts/demo:1.2.0".into(),
        digest: m.images[0].digest,
        source: Some("./charts/demo".into()),
    });
    let full: serde_json::Value = serde_json::from_slice(&m.to_bytes()).unwrap();
    assert_eq!(
        BundleManifest::from_slice(&serde_json::to_vec(&full).unwrap()).unwrap(),
        m
    );
    for (pointer, field) in [
        ("/expires", "expires"),
        ("/images/0/filteredFrom", "images[].filteredFrom"),
        ("/images/0/source", "images[].source"),
        ("/charts/0/source", "charts[].source"),
    ] {
        let mut v = full.clone();
        *v.pointer_mut(pointer).unwrap() = serde_json::Value::Null;
        let err = BundleManifest::from_slice(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(
            matches!(&err, ManifestError::Json(msg) if msg.contains(&format!("{field} is null"))),
            "{pointer}: {err}"
        );
    }
}

#[test]
fn times_have_the_form_the_writer_emits_and_no_other() {
    for (field, created, expires) in [
        ("created", "2026-01-01 00:00:00Z", None),
        ("created", "2026-01-01T00:00Z", None),
        ("created", "2016-12-31T23:59:60Z", None),
        (
            "expires",
            "2026-01-01T00:00:00Z",
            Some("2027-01-01T00:00:00+00:00"),
        ),
        (
            "expires",
            "2026-01-01T00:00:00Z",
            Some("2027-01-01T00:00:00.5Z"),
        ),
    ] {
        let mut m = sample();
        m.created = created.into();
        m.expires = expires.map(Into::into);
        let err = m.check().unwrap_err();
        assert!(
            matches!(err, ManifestError::BadTime { field: f, .. } if f == field),
            "{created} {expires:?}: {err}"
        );
        assert!(
            err.to_string()
                .starts_with(&format!("bundle.json: {field} \"")),
            "{err}"
        );
    }
    let mut m = sample();
    m.expires = Some("9999-12-31T23:59:59Z".into());
    m.check().unwrap();
    assert_eq!(
        m.expires_at().unwrap().unwrap().as_second(),
        crate::time::MAX_SECOND
    );
}

#[test]
fn versions_are_semver_2_with_u64_numbers() {
    // FORMAT.md §4.3 rule 4, case by case: the bundle's and each chart's version.
    let good = [
        "0.0.0",
        "1.2.0-rc.1",
        "1.2.3-0",
        "1.2.3-0a",
        "1.2.3-a-b.c--d",
        "1.2.3-99999999999999999999999",
        "1.2.3+001",
        "1.2.3-rc.1+build.5",
        "18446744073709551615.0.0",
    ];
    let bad = [
        "1.2",
        "v1.2.3",
        "=1.2.3",
        " 1.2.3",
        "1.2.3 ",
        "01.2.3",
        "1.02.3",
        "1.2.3-01",
        "1.2.3-a.01",
        "1.2.3-",
        "1.2.3+",
        "1.2.3-a..b",
        "1.2.3-a_b",
        "1.2.3-ä",
        "1.2.3-a+b+c",
        "18446744073709551616.0.0",
    ];
    let mut m = sample();
    m.charts.push(ChartEntry {
        name: "demo".into(),
        version: "1.0.0".parse().unwrap(),
        reference: "charts/demo:1.0.0".into(),
        digest: m.images[0].digest,
        source: None,
    });
    let doc: serde_json::Value = serde_json::from_slice(&m.to_bytes()).unwrap();
    for pointer in ["/version", "/charts/0/version"] {
        let with = |version: &str| {
            let mut v = doc.clone();
            *v.pointer_mut(pointer).unwrap() = version.into();
            BundleManifest::from_slice(&serde_json::to_vec(&v).unwrap())
        };
        for version in good {
            let parsed = with(version).unwrap_or_else(|e| panic!("{version}: {e}"));
            let kept = match pointer {
                "/version" => parsed.version,
                _ => parsed.charts[0].version.clone(),
            };
            assert_eq!(kept.to_string(), version);
        }
        for version in bad {
            assert!(
                matches!(with(version), Err(ManifestError::Json(_))),
                "{pointer} {version:?}"
            );
        }
    }
}

#[test]
fn a_key_twice_is_refused_at_any_depth() {
    let text = String::from_utf8(sample().to_bytes()).unwrap();
    for (from, to) in [
        (
            "\"name\": \"demo\",",
            "\"name\": \"demo\",\n  \"name\": \"other\",",
        ),
        ("\"size\": 1,", "\"size\": 1,\n      \"size\": 1,"),
    ] {
        let doubled = text.replacen(from, to, 1);
        assert_ne!(doubled, text);
        let err = BundleManifest::from_slice(doubled.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("appears twice"), "{err}");
    }
}

#[test]
fn structs_are_objects_never_positional_arrays() {
    // serde reads `[path, size, sha256]` as a FileEntry: a second spelling of one manifest.
    let full: serde_json::Value = serde_json::from_slice(&sample().to_bytes()).unwrap();
    let file = &full["files"][0];
    for (pointer, positional, name) in [
        (
            "/files/0",
            serde_json::json!([file["path"], file["size"], file["sha256"]]),
            "files[0]",
        ),
        ("/compat", serde_json::json!([">=1.1.0, <1.3.0"]), "compat"),
    ] {
        let mut v = full.clone();
        *v.pointer_mut(pointer).unwrap() = positional;
        let err = BundleManifest::from_slice(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("{name} must be a JSON object, not an array")),
            "{err}"
        );
    }
}

#[test]
fn image_digest_must_be_a_listed_blob() {
    let mut m = sample();
    m.images[0].digest = Digest::of(b"elsewhere");
    assert!(matches!(m.check(), Err(ManifestError::MissingBlob { .. })));
}
