use serde_json::{Value, json};

use super::*;

fn manifest() -> BundleManifest {
    crate::manifest::tests::sample()
}

/// The digest of the manifest's one image, as `index.json` must name it.
fn image_digest() -> String {
    manifest().images[0].digest.to_string()
}

/// The writer's `index.json` for [`manifest`], as a value to spoil.
fn index() -> Value {
    json!({
        "manifests": [{
            "annotations": {REF_NAME_ANNOTATION: "r.example/a:1"},
            "digest": image_digest(),
            "mediaType": crate::oci::OCI_MANIFEST,
            "size": 1
        }],
        "mediaType": crate::oci::OCI_INDEX,
        "schemaVersion": 2
    })
}

fn check(text: &str) -> Result<(), Rejection> {
    check_index(&manifest(), text.as_bytes())
}

fn check_value(v: &Value) -> Result<(), Rejection> {
    check(&v.to_string())
}

fn refused(result: Result<(), Rejection>, needle: &str) {
    match result {
        Err(Rejection::BadIndex(msg)) => assert!(msg.contains(needle), "{needle}: {msg}"),
        other => panic!("{needle}: {other:?}"),
    }
}

#[test]
fn the_writers_index_passes_and_unknown_members_may_hold_anything() {
    check_value(&index()).unwrap();
    let mut v = index();
    v["subject"] = Value::Null;
    v["x-extra"] = json!([1, {"a": null}]);
    v["annotations"] = json!({"org.example": "x"});
    v["manifests"][0]["urls"] = json!(["https://example.com"]);
    v["manifests"][0]["data"] = Value::Null;
    v["manifests"][0]["artifactType"] = json!("application/x");
    v["manifests"][0]["platform"] = json!({"architecture": "arm64", "os": "linux", "variant": "v8", "os.version": "1", "os.features": null});
    check_value(&v).unwrap();
}

#[test]
fn a_key_given_twice_is_refused_wherever_it_is() {
    let digest = image_digest();
    let descriptor = format!(r#""digest":"{digest}","mediaType":"m","size":1"#);
    for text in [
        // The same ref name twice in one annotations object: the last used to win.
        format!(
            r#"{{"schemaVersion":2,"manifests":[{{"annotations":{{"{REF_NAME_ANNOTATION}":"evil","{REF_NAME_ANNOTATION}":"r.example/a:1"}},{descriptor}}}]}}"#
        ),
        format!(
            r#"{{"schemaVersion":2,"x":1,"x":2,"manifests":[{{"annotations":{{"{REF_NAME_ANNOTATION}":"r.example/a:1"}},{descriptor}}}]}}"#
        ),
        format!(
            r#"{{"schemaVersion":2,"schemaVersion":2,"manifests":[{{"annotations":{{"{REF_NAME_ANNOTATION}":"r.example/a:1"}},{descriptor}}}]}}"#
        ),
    ] {
        refused(check(&text), "appears twice");
    }
}

#[test]
fn descriptors_and_platforms_are_objects_never_positional_arrays() {
    let digest = image_digest();
    let mut v = index();
    // serde alone reads `[mediaType, digest, size, annotations]` as the same descriptor.
    v["manifests"][0] = json!([
        crate::oci::OCI_MANIFEST,
        digest,
        1,
        {REF_NAME_ANNOTATION: "r.example/a:1"}
    ]);
    refused(
        check_value(&v),
        "manifests[0] must be a JSON object, not an array",
    );
    let mut v = index();
    v["manifests"][0]["platform"] = json!(["amd64", "linux"]);
    refused(
        check_value(&v),
        "manifests[0].platform must be a JSON object",
    );
    refused(check("[2, null, []]"), "the document must be a JSON object");
}

#[test]
fn typed_members_have_their_type_and_are_never_null() {
    let cases: [(&str, Value, &str); 14] = [
        ("/schemaVersion", json!("2"), "invalid type"),
        ("/schemaVersion", json!(4_294_967_296_u64), "invalid value"),
        ("/mediaType", Value::Null, "mediaType is null"),
        ("/mediaType", json!(1), "invalid type"),
        ("/annotations", json!({"a": 1}), "invalid type"),
        ("/manifests/0/size", json!(-1), "invalid value"),
        ("/manifests/0/size", json!(1.0), "invalid type"),
        ("/manifests/0/digest", json!("sha512:00"), "sha256"),
        (
            "/manifests/0/annotations",
            Value::Null,
            "manifests[].annotations is null",
        ),
        (
            "/manifests/0/artifactType",
            Value::Null,
            "manifests[].artifactType is null",
        ),
        (
            "/manifests/0/platform",
            Value::Null,
            "manifests[].platform is null",
        ),
        (
            "/manifests/0/platform",
            json!({"os": "linux"}),
            "architecture",
        ),
        (
            "/manifests/0/platform",
            json!({"os": "linux", "architecture": "amd64", "variant": null}),
            "manifests[].platform.variant is null",
        ),
        (
            "/manifests/0/platform",
            json!({"os": "linux", "architecture": "amd64", "os.version": 10}),
            "invalid type",
        ),
    ];
    for (pointer, value, needle) in cases {
        let mut v = index();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let target = if parent.is_empty() {
            &mut v
        } else {
            v.pointer_mut(parent).unwrap()
        };
        target[key] = value;
        refused(check_value(&v), needle);
    }
    for missing in ["schemaVersion", "manifests"] {
        let mut v = index();
        v.as_object_mut().unwrap().remove(missing);
        refused(check_value(&v), missing);
    }
    for missing in ["mediaType", "digest", "size"] {
        let mut v = index();
        v["manifests"][0].as_object_mut().unwrap().remove(missing);
        refused(check_value(&v), missing);
    }
}

#[test]
fn every_image_must_be_named_with_its_digest() {
    let mut v = index();
    v["manifests"][0]["digest"] = json!(Digest::of(b"other").to_string());
    assert!(matches!(check_value(&v), Err(Rejection::Inconsistent(_))));
    let mut v = index();
    v["manifests"][0]["annotations"] = json!({});
    assert!(matches!(check_value(&v), Err(Rejection::Inconsistent(_))));
}
