use super::*;

#[test]
fn the_canonical_form_parses_to_seconds() {
    for (text, second) in [
        ("1970-01-01T00:00:00Z", 0),
        ("2026-01-01T00:00:00Z", 1_767_225_600),
        ("2000-02-29T12:34:56Z", 951_827_696),
        ("9999-12-31T23:59:59Z", MAX_SECOND),
    ] {
        let t = BundleTime::parse(text).unwrap();
        assert_eq!(t.as_second(), second, "{text}");
        assert_eq!(t.to_string(), text);
    }
}

#[test]
fn only_the_canonical_form_is_a_bundle_time() {
    // Each of these jiff accepted (or RFC 3339 allows) though the writer never emits it.
    for text in [
        "2026-01-01 00:00:00Z",
        "2026-01-01T00:00Z",
        "2026-01-01T00:00:00+00:00",
        "2026-01-01T00:00:00+0000",
        "2026-01-01T00:00:00+00",
        "2026-01-01T00:00:00-00:00",
        "2026-01-01T00:00:00+24:00",
        "2026-01-01T00:00:00,5Z",
        "2026-01-01T00:00:00.5Z",
        "2026-01-01T00:00:00.1234567890Z",
        "2026-01-01t00:00:00z",
        "2026-01-01T00:00:00",
        " 2026-01-01T00:00:00Z",
        "2026-01-01T00:00:00Z\n",
        "+2026-01-01T00:00:00Z",
        "2026-1-01T00:00:00Z",
        "2026-01-01T0:00:00Z",
        "２026-01-01T00:00:00Z",
        "",
    ] {
        assert_eq!(
            BundleTime::parse(text),
            Err(TimeError::NotCanonical(text.into())),
            "{text:?}"
        );
    }
}

#[test]
fn every_field_is_range_checked() {
    for (text, what) in [
        ("2026-00-01T00:00:00Z", "month"),
        ("2026-13-01T00:00:00Z", "month"),
        ("2026-01-00T00:00:00Z", "day"),
        ("2026-01-32T00:00:00Z", "day"),
        ("2026-04-31T00:00:00Z", "day"),
        ("2026-02-29T00:00:00Z", "day"),
        ("2100-02-29T00:00:00Z", "day"),
        ("2026-01-01T24:00:00Z", "hour"),
        ("2026-01-01T00:60:00Z", "minute"),
        ("2026-01-01T00:00:61Z", "second"),
    ] {
        match BundleTime::parse(text) {
            Err(TimeError::OutOfRange { what: w, .. }) => assert_eq!(w, what, "{text}"),
            other => panic!("{text}: {other:?}"),
        }
    }
    BundleTime::parse("2024-02-29T00:00:00Z").unwrap();
    BundleTime::parse("2000-02-29T00:00:00Z").unwrap();
}

#[test]
fn leap_seconds_and_years_out_of_range_are_refused_by_name() {
    let err = BundleTime::parse("2016-12-31T23:59:60Z").unwrap_err();
    assert_eq!(err, TimeError::LeapSecond("2016-12-31T23:59:60Z".into()));
    assert!(
        err.to_string().contains("leap seconds are not allowed"),
        "{err}"
    );
    for text in ["1969-12-31T23:59:59Z", "0000-01-01T00:00:00Z"] {
        assert_eq!(BundleTime::parse(text), Err(TimeError::Range(text.into())));
    }
    assert!(BundleTime::from_second(MAX_SECOND + 1).is_err());
    assert!(BundleTime::from_second(-1).is_err());
}

#[test]
fn formatting_agrees_with_jiff_and_parses_back() {
    // jiff stops at 9999-12-30T22:00:00Z; the end of the range is checked above.
    let last = jiff::Timestamp::MAX.as_second();
    let mut second = 0;
    while second <= last {
        let t = BundleTime::from_second(second).unwrap();
        let text = t.to_string();
        assert_eq!(
            text,
            jiff::Timestamp::from_second(second).unwrap().to_string()
        );
        assert_eq!(BundleTime::parse(&text), Ok(t));
        second += 7_777_777;
    }
}

#[test]
fn rfc3339_in_a_spec_is_normalised() {
    let utc = BundleTime::parse("2026-03-01T00:00:00Z").unwrap();
    for text in [
        "2026-03-01T00:00:00Z",
        "2026-03-01T02:00:00+02:00",
        "2026-02-28T19:30:00-04:30",
        "2026-03-01t00:00:00z",
        "2026-03-01T00:00:00-00:00",
        "2026-03-01T00:00:00.999999999999Z",
    ] {
        assert_eq!(BundleTime::parse_rfc3339(text), Ok(utc), "{text}");
    }
    for text in [
        "2026-03-01 00:00:00Z",
        "2026-03-01T00:00Z",
        "2026-03-01T00:00:00+0200",
        "2026-03-01T00:00:00+02",
        "2026-03-01T00:00:00,5Z",
        "2026-03-01T00:00:00.Z",
        "2026-03-01T00:00:00",
        "2026-03-01",
    ] {
        assert_eq!(
            BundleTime::parse_rfc3339(text),
            Err(TimeError::NotRfc3339(text.into())),
            "{text}"
        );
    }
    assert!(matches!(
        BundleTime::parse_rfc3339("2026-03-01T00:00:00+24:00"),
        Err(TimeError::OutOfRange {
            what: "offset hour",
            ..
        })
    ));
    assert!(matches!(
        BundleTime::parse_rfc3339("2016-12-31T23:59:60Z"),
        Err(TimeError::LeapSecond(_))
    ));
    // The range applies to the UTC result.
    for text in ["9999-12-31T23:59:59-01:00", "1970-01-01T00:30:00+01:00"] {
        assert_eq!(
            BundleTime::parse_rfc3339(text),
            Err(TimeError::Range(text.into()))
        );
    }
    assert_eq!(
        BundleTime::parse_rfc3339("1970-01-01T01:00:00+01:00").map(BundleTime::as_second),
        Ok(0)
    );
}

#[test]
fn clock_readings_truncate_and_expiry_is_exact() {
    let t = jiff::Timestamp::new(5, 999_999_999).unwrap();
    assert_eq!(BundleTime::from_timestamp(t).unwrap().as_second(), 5);
    assert!(BundleTime::from_timestamp(jiff::Timestamp::new(-1, 0).unwrap()).is_err());
    assert!(BundleTime::from_timestamp(jiff::Timestamp::new(0, -1).unwrap()).is_err());
    let expires = BundleTime::from_second(100).unwrap();
    assert!(!expires.is_reached_at(jiff::Timestamp::new(99, 999_999_999).unwrap()));
    assert!(expires.is_reached_at(jiff::Timestamp::new(100, 0).unwrap()));
}
