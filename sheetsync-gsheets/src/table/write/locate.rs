//! Locating the rows a write concerns: where each key is (from the full read that just ended,
//! or by reading the key column), and the current cells of the rows new keys go into.

use super::*;

impl SheetTable {
    /// Where the keys are: from the positions this process knows ([`Positions`]), else read
    /// from the key column(s) with the rows `SetKey` ops point at.
    pub(super) async fn locate(&self, l: &Layout, ops: &[WriteOp]) -> Result<Located> {
        if let Some(positions) = self.known_positions(ops) {
            return Ok(Located {
                positions,
                set_key_cells: HashMap::new(),
            });
        }
        let gen = self.cache.lock().expect("cache lock").positions_gen;
        let mut ranges: Vec<String> = self.key_ranges(l);
        let set_key_rows: Vec<u32> = ops
            .iter()
            .filter_map(|op| match op {
                WriteOp::SetKey { locator, .. } => parse_locator(locator).map(|(r, _)| r),
                _ => None,
            })
            .collect();
        ranges.extend(set_key_rows.iter().map(|r| l.rows_range(*r, *r)));
        let got = self
            .client
            .batch_get(&self.opts.spreadsheet_id, &ranges, "UNFORMATTED_VALUE")
            .await?;
        let nkeys = self.schema.key.len();
        let all = Arc::new(self.key_positions(l, &got[..nkeys]));
        let positions = op_keys(ops, &self.schema)
            .filter_map(|k| all.get(&k).map(|rows| (k, rows)))
            .collect();
        self.cache
            .lock()
            .expect("cache lock")
            .learn_positions(gen, Positions::read(all));
        let set_key_cells = set_key_rows
            .iter()
            .zip(&got[nkeys..])
            .map(|(r, vr)| (*r, first_row(vr)))
            .collect();
        Ok(Located {
            positions,
            set_key_cells,
        })
    }

    /// The A1 ranges of the key column(s), from the first data row down.
    pub(in crate::table) fn key_ranges(&self, l: &Layout) -> Vec<String> {
        self.schema
            .key
            .iter()
            .map(|&k| l.column_down(l.columns[k]))
            .collect()
    }

    /// The key columns from the first data row to the grid's edge, by `sheetId`.
    pub(in crate::table) fn key_grid_ranges(&self, l: &Layout) -> Vec<GridRange> {
        self.schema
            .key
            .iter()
            .map(|&k| l.grid_column_down(l.columns[k]))
            .collect()
    }

    /// Key → 1-based rows, from the key columns read from the first data row down.
    pub(in crate::table) fn key_positions(&self, l: &Layout, columns: &[ValueRange]) -> KeyRows {
        RowKeys::new(l.header_row + 1, self.key_column_rows(l, columns)).key_rows()
    }

    /// The key of each row from the first data row down (`None` where a part is missing),
    /// from the key columns.
    pub(in crate::table) fn key_column_rows(
        &self,
        l: &Layout,
        columns: &[ValueRange],
    ) -> Vec<Option<RowKey>> {
        let columns: Vec<Vec<Json>> = columns
            .iter()
            .map(|vr| {
                vr.values
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|mut cells| {
                        if cells.is_empty() {
                            Json::String(String::new())
                        } else {
                            cells.swap_remove(0)
                        }
                    })
                    .collect()
            })
            .collect();
        let height = columns.iter().map(Vec::len).max().unwrap_or(0);
        (0..height)
            .map(|i| {
                let cells: Vec<Json> = columns
                    .iter()
                    .map(|c| c.get(i).cloned().unwrap_or(Json::String(String::new())))
                    .collect();
                self.key_from_cells(l, &cells)
            })
            .collect()
    }

    /// The key in key-column cells (one cell per key column), if every part is present.
    pub(super) fn key_from_cells(&self, l: &Layout, cells: &[Json]) -> Option<RowKey> {
        let mut vals = Vec::with_capacity(cells.len());
        for (cell, &k) in cells.iter().zip(&self.schema.key) {
            match read_cell(cell, self.schema.columns[k].ty, l.tz) {
                Ok(v) if !v.is_null() => vals.push(v),
                _ => return None,
            }
        }
        (vals.len() == self.schema.key.len()).then(|| RowKey::from_values(&vals))
    }

    /// The key of a whole row's cells (from column A).
    pub(in crate::table) fn key_of_row(&self, l: &Layout, row: &[Json]) -> Option<RowKey> {
        let empty = Json::String(String::new());
        let cells: Vec<Json> = self
            .schema
            .key
            .iter()
            .map(|&k| row.get(l.columns[k] as usize).unwrap_or(&empty).clone())
            .collect();
        self.key_from_cells(l, &cells)
    }

    /// Does a pre-image meet a target's expectation?
    pub(super) fn meets(&self, l: &Layout, expect: &Expect, row: &[Json]) -> bool {
        match expect {
            Expect::Key(k) => self.key_of_row(l, row).as_ref() == Some(k),
            Expect::Fingerprint(fp) => matches!(
                self.observe_row(l, 0, row, None).map(|o| o.change),
                Some(Change::Unkeyed(u)) if format!("{:032x}", u.row.hash()) == *fp
            ),
            Expect::Content(c) => same_cells(row, c),
        }
    }

    /// The known rows of the keys `ops` write, when every one of them is known (a key this
    /// process appended sits at a row not known yet, and a `SetKey` op needs its row read).
    pub(super) fn known_positions(&self, ops: &[WriteOp]) -> Option<HashMap<RowKey, Vec<u32>>> {
        let cache = self.cache.lock().expect("cache lock");
        let known = cache.positions.as_ref()?;
        let mut out = HashMap::with_capacity(ops.len());
        for op in ops {
            let key = match op {
                WriteOp::Upsert { row, .. } => row.key(&self.schema)?,
                WriteOp::Delete { key, .. } => key.clone(),
                WriteOp::SetKey { .. } | WriteOp::Insert { .. } => return None,
            };
            if known.unplaced.contains(&key) {
                return None;
            }
            if let Some(rows) = known.rows(&key) {
                out.insert(key, rows);
            }
        }
        Some(out)
    }
}

/// The keys whose rows a plan looks up: those of upserts and deletes.
fn op_keys<'a>(ops: &'a [WriteOp], schema: &'a TableSchema) -> impl Iterator<Item = RowKey> + 'a {
    ops.iter().filter_map(|op| match op {
        WriteOp::Upsert { row, .. } => row.key(schema),
        WriteOp::Delete { key, .. } => Some(key.clone()),
        WriteOp::SetKey { .. } | WriteOp::Insert { .. } => None,
    })
}

#[cfg(test)]
mod tests {
    use super::super::super::tests::{layout, row, table};
    use super::*;
    use serde_json::json;

    fn column(cells: Vec<Json>) -> ValueRange {
        ValueRange {
            values: Some(cells.into_iter().map(|c| vec![c]).collect()),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn keys_are_located_by_row_and_a_key_typed_twice_has_both_rows() {
        let t = table().await;
        let l = layout();
        // Rows 2 to 6: 7, blank, "not a number", 8, 7 again.
        let ids = column(vec![
            json!(7),
            json!(""),
            json!("x"),
            json!(8.0),
            json!("7"),
        ]);
        let rows = t.key_column_rows(&l, std::slice::from_ref(&ids));
        let key = |id: i64| row(id, "", 0).key(&t.schema);
        assert_eq!(rows, vec![key(7), None, None, key(8), key(7)]);
        let positions = t.key_positions(&l, &[ids]);
        assert_eq!(positions.len(), 2);
        assert_eq!(positions.get(&key(7).unwrap()), Some(vec![2, 6]));
        assert_eq!(positions.get(&key(8).unwrap()), Some(vec![5]));
        let dups: Vec<_> = positions.duplicates().collect();
        assert_eq!(dups, vec![(&key(7).unwrap(), vec![2, 6])]);
    }

    #[tokio::test]
    async fn a_rows_key_is_read_where_the_layout_puts_the_key_column() {
        let t = table().await;
        let mut l = layout();
        l.columns = vec![2, 0, 1];
        assert_eq!(
            t.key_of_row(&l, &[json!("name"), json!(3), json!(41)]),
            row(41, "", 0).key(&t.schema)
        );
        assert_eq!(t.key_of_row(&l, &[json!("name")]), None, "no key cell");
        assert_eq!(t.key_ranges(&l), vec!["'Items'!C2:C".to_string()]);
    }

    #[tokio::test]
    async fn a_pre_image_meets_a_key_a_fingerprint_or_exact_content() {
        let t = table().await;
        let l = layout();
        let cells = vec![json!(5), json!(2), json!("five")];
        let key = row(5, "", 0).key(&t.schema).unwrap();
        assert!(t.meets(&l, &Expect::Key(key), &cells));
        assert!(!t.meets(
            &l,
            &Expect::Key(row(6, "", 0).key(&t.schema).unwrap()),
            &cells
        ));
        let unkeyed = vec![json!(""), json!(2), json!("five")];
        let fp = match t.observe_row(&l, 4, &unkeyed, None).map(|o| o.change) {
            Some(Change::Unkeyed(u)) => format!("{:032x}", u.row.hash()),
            other => panic!("{other:?}"),
        };
        assert!(t.meets(&l, &Expect::Fingerprint(fp.clone()), &unkeyed));
        assert!(!t.meets(&l, &Expect::Fingerprint(fp), &cells));
        assert!(t.meets(
            &l,
            &Expect::Content(vec![json!(5), Json::Null]),
            &cells[..2]
        ));
    }
    fn k(id: i64) -> RowKey {
        row(id, "", 0)
            .key(&super::super::super::tests::schema())
            .unwrap()
    }

    #[test]
    fn a_delete_shifts_the_rows_below_and_an_append_is_there_but_unplaced() {
        let rows = (1..=5).map(|i| (k(i), i as u32 + 1)).collect();
        let mut p = Positions::read(Arc::new(rows));
        assert!(p.advance(&[(k(2), 3), (k(4), 5)], &[k(9)]));
        assert!(p.holds(&k(1), 2), "above the deletes: unmoved");
        assert!(p.holds(&k(3), 3), "below one delete: one up");
        assert!(p.holds(&k(5), 4), "below two: two up");
        assert!(p.rows(&k(2)).is_none() && p.rows(&k(4)).is_none());
        assert!(p.unplaced.contains(&k(9)) && !p.holds(&k(9), 7));
    }

    #[test]
    fn later_deletes_are_numbered_as_the_tab_is_then() {
        // Rows 2..=7 hold keys 1..=6; delete key 2 (row 3), then key 5, which is at row 5 now.
        let rows = (1..=6).map(|i| (k(i), i as u32 + 1)).collect();
        let mut p = Positions::read(Arc::new(rows));
        assert!(p.advance(&[(k(2), 3)], &[]));
        assert!(p.advance(&[(k(5), 5), (k(3), 3)], &[]));
        assert!(p.holds(&k(1), 2));
        assert!(p.holds(&k(4), 3), "read at row 5, two rows above it gone");
        assert!(p.holds(&k(6), 4), "read at row 7, three rows above it gone");
        assert!(p.rows(&k(5)).is_none());
    }

    #[test]
    fn a_delete_where_the_positions_had_no_such_row_forgets_them() {
        let rows = (1..=3).map(|i| (k(i), i as u32 + 1)).collect();
        let mut p = Positions::read(Arc::new(rows));
        assert!(!p.advance(&[(k(2), 4)], &[]), "key 2 is at row 3, not 4");
        let mut p = Positions::read(Arc::new((1..=3).map(|i| (k(i), i as u32 + 1)).collect()));
        assert!(p.advance(&[(k(2), 3)], &[]));
        assert!(!p.advance(&[(k(2), 3)], &[]), "deleted already");
    }

    #[tokio::test]
    async fn known_positions_serve_a_write_only_when_every_key_is_placed() {
        let t = table().await;
        let rows = [(k(1), 2), (k(2), 3)].into_iter().collect();
        let mut p = Positions::read(Arc::new(rows));
        assert!(p.advance(&[], &[k(9)]));
        t.cache.lock().unwrap().positions = Some(p);
        let up = |id, name| WriteOp::Upsert {
            row: row(id, name, 1),
            expected: Expected::Any,
        };
        let got = t.known_positions(&[up(1, "a"), up(7, "new")]).unwrap();
        assert_eq!(got.get(&k(1)), Some(&vec![2]));
        assert!(!got.contains_key(&k(7)), "a key not in the tab: appended");
        assert!(t.known_positions(&[up(9, "appended")]).is_none());
        t.positions_unknown();
        assert!(t.known_positions(&[up(1, "a")]).is_none());
    }
}
