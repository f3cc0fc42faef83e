//! Records on disk: a format-version byte, then postcard. postcard's wire format is
//! stable and documented; the leading byte lets a record's shape change later
//! (decode the old version, migrate) without guessing.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::StoreError;

/// The version byte written in front of every record today.
pub const RECORD_FORMAT_V1: u8 = 1;

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Straight into the buffer behind the version byte: one allocation per record.
    // Serialising plain data structs into a Vec cannot fail.
    postcard::to_extend(value, vec![RECORD_FORMAT_V1]).expect("postcard encodes plain records")
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&RECORD_FORMAT_V1, rest)) => postcard::from_bytes(rest)
            .map_err(|e| StoreError::Corrupt(format!("undecodable record: {e}"))),
        Some((v, _)) => Err(StoreError::Corrupt(format!(
            "record format version {v} is not known to this build"
        ))),
        None => Err(StoreError::Corrupt("empty record".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    struct R {
        a: u32,
        b: String,
    }

    #[test]
    fn records_round_trip_behind_their_version_byte() {
        let bytes = encode(&R {
            a: 7,
            b: "x".into(),
        });
        assert_eq!(bytes[0], RECORD_FORMAT_V1);
        assert_eq!(
            decode::<R>(&bytes).unwrap(),
            R {
                a: 7,
                b: "x".into()
            }
        );
        let mut future = bytes.clone();
        future[0] = 9;
        assert!(decode::<R>(&future).is_err());
        assert!(decode::<R>(&[]).is_err());
    }
}
