//! Request bodies as Google gets them: JSON without the fields that are not set, written once.
//!
//! google-sheets4's types serialize an unset field as `null`. Its own client turns a request
//! into a `serde_json::Value`, removes the nulls and prints the tree: three passes and a tree
//! of maps for a body that can hold 100,000 cells. [`to_vec`] writes the bytes in one pass,
//! leaving out `null` struct fields and map entries as it goes, and [`len`] counts them without
//! keeping them (the write-size budget measures what is sent, [`crate::guard`]).
//!
//! One difference from google-sheets4's removal, on purpose: a `null` inside an array is kept,
//! since dropping it would move every later cell of a row one column left. Nothing sheetsync
//! sends has one.

use std::fmt;
use std::io;

use serde::ser::{self, Impossible, Serialize, Serializer};

/// `v` as JSON bytes, unset fields left out.
pub(crate) fn to_vec<T: Serialize + ?Sized>(v: &T) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(512);
    v.serialize(SkipNulls(&mut serde_json::Serializer::new(&mut out)))?;
    Ok(out)
}

/// The length of [`to_vec`]'s bytes, counted without keeping them.
pub(crate) fn len<T: Serialize + ?Sized>(v: &T) -> usize {
    let mut n = Count(0);
    match v.serialize(SkipNulls(&mut serde_json::Serializer::new(&mut n))) {
        Ok(()) => n.0,
        Err(_) => 0,
    }
}

/// A writer that only counts.
struct Count(usize);

impl io::Write for Count {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Whether `v` would be written as `null` (an unset `Option`, a `Value::Null`).
fn is_null<T: Serialize + ?Sized>(v: &T) -> bool {
    v.serialize(NullProbe).is_ok()
}

/// Serializes through `S`, leaving out struct fields and map entries that are `null`.
struct SkipNulls<S>(S);

/// A value serialized through [`SkipNulls`].
struct Inner<'a, T: ?Sized>(&'a T);

impl<T: Serialize + ?Sized> Serialize for Inner<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(SkipNulls(s))
    }
}

macro_rules! forward {
    ($($method:ident($ty:ty)),* $(,)?) => {
        $(fn $method(self, v: $ty) -> Result<S::Ok, S::Error> {
            self.0.$method(v)
        })*
    };
}

impl<S: Serializer> Serializer for SkipNulls<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = SkipNulls<S::SerializeSeq>;
    type SerializeTuple = SkipNulls<S::SerializeTuple>;
    type SerializeTupleStruct = SkipNulls<S::SerializeTupleStruct>;
    type SerializeTupleVariant = SkipNulls<S::SerializeTupleVariant>;
    type SerializeMap = SkipNulls<S::SerializeMap>;
    type SerializeStruct = SkipNulls<S::SerializeStruct>;
    type SerializeStructVariant = SkipNulls<S::SerializeStructVariant>;

    forward!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_i128(i128),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_u128(u128),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_unit_struct(&'static str),
    );

    fn serialize_none(self) -> Result<S::Ok, S::Error> {
        self.0.serialize_none()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<S::Ok, S::Error> {
        self.0.serialize_some(&Inner(v))
    }
    fn serialize_unit(self) -> Result<S::Ok, S::Error> {
        self.0.serialize_unit()
    }
    fn serialize_unit_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
    ) -> Result<S::Ok, S::Error> {
        self.0.serialize_unit_variant(name, index, variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        v: &T,
    ) -> Result<S::Ok, S::Error> {
        self.0.serialize_newtype_struct(name, &Inner(v))
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        v: &T,
    ) -> Result<S::Ok, S::Error> {
        self.0
            .serialize_newtype_variant(name, index, variant, &Inner(v))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        self.0.serialize_seq(len).map(SkipNulls)
    }
    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, S::Error> {
        self.0.serialize_tuple(len).map(SkipNulls)
    }
    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, S::Error> {
        self.0.serialize_tuple_struct(name, len).map(SkipNulls)
    }
    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        self.0
            .serialize_tuple_variant(name, index, variant, len)
            .map(SkipNulls)
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        self.0.serialize_map(len).map(SkipNulls)
    }
    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, S::Error> {
        self.0.serialize_struct(name, len).map(SkipNulls)
    }
    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        self.0
            .serialize_struct_variant(name, index, variant, len)
            .map(SkipNulls)
    }
    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

/// The compound serializers: elements wrapped, `null` fields and entries left out.
macro_rules! elements {
    ($($trait:ident::$method:ident),* $(,)?) => {
        $(impl<S: ser::$trait> ser::$trait for SkipNulls<S> {
            type Ok = S::Ok;
            type Error = S::Error;
            fn $method<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), S::Error> {
                self.0.$method(&Inner(v))
            }
            fn end(self) -> Result<S::Ok, S::Error> {
                self.0.end()
            }
        })*
    };
}

elements!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field,
);

macro_rules! fields {
    ($($trait:ident),* $(,)?) => {
        $(impl<S: ser::$trait> ser::$trait for SkipNulls<S> {
            type Ok = S::Ok;
            type Error = S::Error;
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                v: &T,
            ) -> Result<(), S::Error> {
                if is_null(v) {
                    return self.0.skip_field(key);
                }
                self.0.serialize_field(key, &Inner(v))
            }
            fn end(self) -> Result<S::Ok, S::Error> {
                self.0.end()
            }
        })*
    };
}

fields!(SerializeStruct, SerializeStructVariant);

impl<S: ser::SerializeMap> ser::SerializeMap for SkipNulls<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    fn serialize_entry<K: Serialize + ?Sized, V: Serialize + ?Sized>(
        &mut self,
        key: &K,
        v: &V,
    ) -> Result<(), S::Error> {
        if is_null(v) {
            return Ok(());
        }
        self.0.serialize_entry(&Inner(key), &Inner(v))
    }
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), S::Error> {
        self.0.serialize_key(&Inner(key))
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), S::Error> {
        self.0.serialize_value(&Inner(v))
    }
    fn end(self) -> Result<S::Ok, S::Error> {
        self.0.end()
    }
}

/// Answers "is this `null`?" without serializing anything else: every value that is not
/// stops at its first call.
struct NullProbe;

/// What [`NullProbe`] answers for a value that is not `null`.
#[derive(Debug)]
struct NotNull;

impl fmt::Display for NotNull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not null")
    }
}

impl std::error::Error for NotNull {}

impl ser::Error for NotNull {
    fn custom<T: fmt::Display>(_: T) -> Self {
        NotNull
    }
}

macro_rules! not_null {
    ($($method:ident($($arg:ty),*)),* $(,)?) => {
        $(fn $method(self, $(_: $arg),*) -> Result<(), NotNull> {
            Err(NotNull)
        })*
    };
}

impl Serializer for NullProbe {
    type Ok = ();
    type Error = NotNull;
    type SerializeSeq = Impossible<(), NotNull>;
    type SerializeTuple = Impossible<(), NotNull>;
    type SerializeTupleStruct = Impossible<(), NotNull>;
    type SerializeTupleVariant = Impossible<(), NotNull>;
    type SerializeMap = Impossible<(), NotNull>;
    type SerializeStruct = Impossible<(), NotNull>;
    type SerializeStructVariant = Impossible<(), NotNull>;

    not_null!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str),
    );

    fn serialize_none(self) -> Result<(), NotNull> {
        Ok(())
    }
    fn serialize_unit(self) -> Result<(), NotNull> {
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<(), NotNull> {
        v.serialize(NullProbe)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<(), NotNull> {
        Err(NotNull)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), NotNull> {
        Err(NotNull)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, NotNull> {
        Err(NotNull)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, NotNull> {
        Err(NotNull)
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, NotNull> {
        Err(NotNull)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, NotNull> {
        Err(NotNull)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, NotNull> {
        Err(NotNull)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, NotNull> {
        Err(NotNull)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, NotNull> {
        Err(NotNull)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use google_sheets4::api::{
        BatchUpdateSpreadsheetRequest, CellData, CopyPasteRequest, DeleteDimensionRequest,
        DimensionRange, ExtendedValue, GridRange, Request, RowData, UpdateCellsRequest, ValueRange,
    };
    use google_sheets4::common::FieldMask;
    use serde_json::{json, Value as Json};

    /// What google-sheets4's own client sends for `v`.
    fn google(v: &impl Serialize) -> Json {
        let mut json = serde_json::to_value(v).unwrap();
        google_sheets4::common::remove_json_null_values(&mut json);
        json
    }

    fn same_as_google(v: &impl Serialize) {
        let ours = to_vec(v).unwrap();
        let want = google(v);
        let got: Json = serde_json::from_slice(&ours).unwrap();
        assert_eq!(got, want);
        assert_eq!(ours.len(), serde_json::to_vec(&want).unwrap().len());
        assert_eq!(len(v), ours.len());
    }

    fn cell(v: ExtendedValue) -> CellData {
        CellData {
            user_entered_value: Some(v),
            ..Default::default()
        }
    }

    #[test]
    fn a_guarded_batch_is_sent_as_google_sheets4_would_send_it() {
        let rows = (0..3)
            .map(|i| RowData {
                values: Some(vec![
                    cell(ExtendedValue {
                        string_value: Some(format!("row {i} \"quoted\" é")),
                        ..Default::default()
                    }),
                    cell(ExtendedValue {
                        number_value: Some(i as f64 / 3.0),
                        ..Default::default()
                    }),
                    CellData::default(),
                    cell(ExtendedValue {
                        bool_value: Some(i % 2 == 0),
                        ..Default::default()
                    }),
                ]),
            })
            .collect();
        let grid = GridRange {
            sheet_id: Some(7),
            start_row_index: Some(1),
            end_row_index: Some(4),
            ..Default::default()
        };
        let req = BatchUpdateSpreadsheetRequest {
            requests: Some(vec![
                Request {
                    update_cells: Some(UpdateCellsRequest {
                        rows: Some(rows),
                        fields: Some(FieldMask::new(&["userEnteredValue", "note"])),
                        range: Some(grid.clone()),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                Request {
                    copy_paste: Some(CopyPasteRequest {
                        source: Some(grid.clone()),
                        destination: Some(grid),
                        paste_type: Some("PASTE_VALUES".into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                Request {
                    delete_dimension: Some(DeleteDimensionRequest {
                        range: Some(DimensionRange {
                            sheet_id: Some(0),
                            dimension: Some("ROWS".into()),
                            start_index: Some(5),
                            end_index: Some(6),
                        }),
                    }),
                    ..Default::default()
                },
            ]),
            include_spreadsheet_in_response: Some(false),
            response_ranges: Some(vec!["Sheet1!A1:B2".into()]),
            ..Default::default()
        };
        same_as_google(&req);
    }

    #[test]
    fn nulls_inside_objects_go_and_nulls_inside_arrays_stay() {
        let body = ValueRange {
            values: Some(vec![vec![json!(1), json!({"a": null, "b": [null, 2]})]]),
            major_dimension: Some("ROWS".into()),
            range: None,
        };
        let got: Json = serde_json::from_slice(&to_vec(&body).unwrap()).unwrap();
        assert_eq!(
            got,
            json!({"majorDimension": "ROWS", "values": [[1, {"b": [null, 2]}]]})
        );
    }

    #[test]
    fn an_empty_request_is_an_empty_object() {
        same_as_google(&Request::default());
        assert_eq!(to_vec(&Request::default()).unwrap(), b"{}");
    }
}
