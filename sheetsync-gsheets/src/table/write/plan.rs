//! Planning a write batch: the engine's ops, against the located rows, become positional
//! targets (cells to write, rows to delete), rows to append and outcomes known without writing.

use super::*;

impl SheetTable {
    /// Turns the engine's ops into positional targets and appends.
    pub(super) fn plan_writes(&self, l: &Layout, ops: &[WriteOp], at: &Located) -> WritePlan {
        let mut plan = WritePlan {
            outcomes: vec![None; ops.len()],
            targets: Vec::new(),
            appends: Vec::new(),
            written: Vec::new(),
            positions_lost: false,
        };
        for (n, op) in ops.iter().enumerate() {
            plan.outcomes[n] = match op {
                WriteOp::Upsert { row, expected } => {
                    self.plan_upsert(l, n, row, expected, at, &mut plan)
                }
                WriteOp::Delete { key, .. } => match at.positions.get(key).map(Vec::as_slice) {
                    None => None, // already gone
                    Some([p]) => {
                        plan.targets.push(Target {
                            op: n,
                            row: *p,
                            expect: Expect::Key(key.clone()),
                            action: Action::Delete,
                        });
                        None
                    }
                    Some(ps) => Some(WriteOutcome::Held(format!(
                        "key {key} appears in rows {ps:?} of the Sheet; delete one by hand"
                    ))),
                },
                WriteOp::SetKey { locator, row } => {
                    self.plan_set_key(l, n, locator, row, at, &mut plan)
                }
                WriteOp::Insert { .. } => Some(WriteOutcome::Held(
                    "the Sheet does not generate keys; configure the mapping's keys".into(),
                )),
            };
        }
        plan
    }

    pub(super) fn plan_upsert(
        &self,
        l: &Layout,
        n: usize,
        row: &Row,
        expected: &Expected,
        at: &Located,
        plan: &mut WritePlan,
    ) -> Option<WriteOutcome> {
        let Some(key) = row.key(&self.schema) else {
            return Some(WriteOutcome::Held(
                "a row without a key cannot be written".into(),
            ));
        };
        if let Some(c) = self
            .schema
            .columns
            .iter()
            .zip(&row.0)
            .find(|(c, v)| v.is_null() && !c.nullable)
        {
            return Some(WriteOutcome::Held(format!(
                "column {:?} may not be empty",
                c.0.name
            )));
        }
        let writable = |i: usize| self.schema.columns[i].direction != Direction::SheetToDb;
        match (at.positions.get(&key).map(Vec::as_slice), expected) {
            (Some(ps @ [_, _, ..]), _) => Some(WriteOutcome::Held(format!(
                "key {key} appears in rows {ps:?} of the Sheet"
            ))),
            (Some([_]), Expected::Absent) | (None, Expected::Row(_)) => Some(WriteOutcome::Stale),
            (Some([p]), _) => {
                let before = match expected {
                    Expected::Row(r) => Some(r),
                    _ => None,
                };
                match self.cell_writes(l, row, before, &writable) {
                    Ok(cells) if cells.is_empty() => None,
                    Ok(mut cells) => {
                        // The key cells too: a write that lands on another row then shows as a
                        // duplicated key, never as this row's values under another key.
                        cells.extend(self.key_cells(l, row));
                        plan.written
                            .push((key.clone(), changed_cells(row, before, &writable)));
                        plan.targets.push(Target {
                            op: n,
                            row: *p,
                            expect: Expect::Key(key),
                            action: Action::Cells(cells),
                        });
                        None
                    }
                    Err(reason) => Some(WriteOutcome::Held(reason)),
                }
            }
            (None, _) => match self.full_row(l, row) {
                Ok(cells) => {
                    // A new row: no person can have edited it yet, so no mark.
                    plan.appends.push((n, cells));
                    None
                }
                Err(reason) => Some(WriteOutcome::Held(reason)),
            },
            (Some([]), _) => unreachable!("positions are never empty"),
        }
    }

    pub(super) fn plan_set_key(
        &self,
        l: &Layout,
        n: usize,
        locator: &str,
        row: &Row,
        at: &Located,
        plan: &mut WritePlan,
    ) -> Option<WriteOutcome> {
        let Some((r, fingerprint)) = parse_locator(locator) else {
            return Some(WriteOutcome::Held(format!("bad locator {locator:?}")));
        };
        let expect = Expect::Fingerprint(fingerprint.to_string());
        // Checked now when the row was read, and in any case by the write's pre-image.
        if at
            .set_key_cells
            .get(&r)
            .is_some_and(|cells| !self.meets(l, &expect, cells))
        {
            // The row changed or moved since it was read.
            return Some(WriteOutcome::Stale);
        }
        plan.targets.push(Target {
            op: n,
            row: r,
            expect,
            action: Action::Cells(self.key_cells(l, row)),
        });
        None
    }

    /// The key cells of `row`, where the tab has them.
    pub(super) fn key_cells(&self, l: &Layout, row: &Row) -> CellWrites {
        self.schema
            .key
            .iter()
            .map(|&k| {
                (
                    l.columns[k],
                    write_cell(&row.0[k], l.tz).unwrap_or_default(),
                )
            })
            .collect()
    }

    /// The cells of `row` that differ from `before` (all mapped cells when unknown), skipping
    /// columns the Sheet owns.
    pub(super) fn cell_writes(
        &self,
        l: &Layout,
        row: &Row,
        before: Option<&Row>,
        writable: &dyn Fn(usize) -> bool,
    ) -> std::result::Result<CellWrites, String> {
        let mut cells = Vec::new();
        for (i, v) in row.0.iter().enumerate() {
            if !writable(i) || before.is_some_and(|b| b.0.get(i) == Some(v)) {
                continue;
            }
            let cell = write_cell(v, l.tz)
                .map_err(|e| format!("column {:?}: {}", self.schema.columns[i].name, e.0))?;
            cells.push((l.columns[i], cell));
        }
        Ok(cells)
    }

    /// A new row's cells from column A to the last mapped column.
    pub(super) fn full_row(&self, l: &Layout, row: &Row) -> std::result::Result<Vec<Json>, String> {
        let mut cells = vec![Json::String(String::new()); l.width() as usize];
        for (i, v) in row.0.iter().enumerate() {
            cells[l.columns[i] as usize] = write_cell(v, l.tz)
                .map_err(|e| format!("column {:?}: {}", self.schema.columns[i].name, e.0))?;
        }
        Ok(cells)
    }
}

/// The cells of `row` that a write changes: those differing from `before` (all when unknown),
/// among the writable columns.
pub(super) fn changed_cells(
    row: &Row,
    before: Option<&Row>,
    writable: &dyn Fn(usize) -> bool,
) -> Vec<(usize, Value)> {
    row.0
        .iter()
        .enumerate()
        .filter(|(i, v)| writable(*i) && before.is_none_or(|b| b.0.get(*i) != Some(*v)))
        .map(|(i, v)| (i, v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::super::tests::{layout, row, table};
    use super::*;
    use serde_json::json;

    fn located(t: &SheetTable, at: &[(i64, &[u32])]) -> Located {
        Located {
            positions: at
                .iter()
                .map(|(id, rows)| (row(*id, "", 0).key(&t.schema).unwrap(), rows.to_vec()))
                .collect(),
            set_key_cells: HashMap::new(),
        }
    }

    fn update(from: Row, to: Row) -> WriteOp {
        WriteOp::Upsert {
            row: to,
            expected: Expected::Row(from),
        }
    }

    #[tokio::test]
    async fn an_update_writes_only_its_changed_cells_and_the_key_at_the_located_row() {
        let t = table().await;
        let l = layout();
        let ops = [update(row(1, "a", 5), row(1, "b", 5))];
        let plan = t.plan_writes(&l, &ops, &located(&t, &[(1, &[7])]));
        assert_eq!(plan.outcomes, vec![None]);
        let key = row(1, "", 0).key(&t.schema).unwrap();
        assert_eq!(
            plan.targets,
            vec![Target {
                op: 0,
                row: 7,
                expect: Expect::Key(key.clone()),
                // `name` is in column C, the key in A.
                action: Action::Cells(vec![(2, json!("b")), (0, json!(1))]),
            }]
        );
        assert_eq!(
            plan.written,
            vec![(key, vec![(1, Value::Text("b".into()))])]
        );
        assert!(plan.appends.is_empty());
    }

    #[tokio::test]
    async fn new_rows_are_appended_and_what_cannot_be_written_is_known_before_sending() {
        let t = table().await;
        let l = layout();
        let unchanged = row(4, "same", 1);
        let ops = [
            WriteOp::Upsert {
                row: row(2, "new", 3),
                expected: Expected::Absent,
            },
            // Expected absent, but the Sheet has the key: stale.
            WriteOp::Upsert {
                row: row(1, "x", 0),
                expected: Expected::Absent,
            },
            // Expected a row that is not there: stale.
            update(row(3, "a", 0), row(3, "b", 0)),
            update(unchanged.clone(), unchanged),
            update(row(5, "a", 0), row(5, "b", 0)),
            WriteOp::Delete {
                key: row(6, "", 0).key(&t.schema).unwrap(),
                expected: Expected::Any,
            },
            WriteOp::Insert { row: row(0, "", 0) },
            WriteOp::Upsert {
                row: Row::new(vec![Value::Int(8), Value::Null, Value::Null]),
                expected: Expected::Absent,
            },
        ];
        let at = located(&t, &[(1, &[2]), (4, &[3]), (5, &[4, 9])]);
        let plan = t.plan_writes(&l, &ops, &at);
        let held = |o: &Option<WriteOutcome>, what: &str| matches!(o, Some(WriteOutcome::Held(r)) if r.contains(what));
        assert_eq!(
            plan.outcomes[..4],
            [
                None,
                Some(WriteOutcome::Stale),
                Some(WriteOutcome::Stale),
                None
            ]
        );
        assert!(
            held(&plan.outcomes[4], "rows [4, 9]"),
            "{:?}",
            plan.outcomes[4]
        );
        assert_eq!(
            plan.outcomes[5], None,
            "deleting a row that is gone is done"
        );
        assert!(held(&plan.outcomes[6], "does not generate keys"));
        assert!(held(&plan.outcomes[7], "may not be empty"));
        assert!(plan.targets.is_empty(), "{:?}", plan.targets);
        assert_eq!(
            plan.appends,
            vec![(0, vec![json!(2), json!(3), json!("new")])]
        );
    }

    #[tokio::test]
    async fn a_delete_targets_its_one_row_and_a_key_goes_into_the_row_it_was_planned_for() {
        let t = table().await;
        let l = layout();
        let key = row(1, "", 0).key(&t.schema).unwrap();
        let mut at = located(&t, &[(1, &[5])]);
        let unkeyed = vec![json!(""), json!(2), json!("typed")];
        let fp = match t.observe_row(&l, 8, &unkeyed, None).map(|o| o.change) {
            Some(Change::Unkeyed(u)) => format!("{:032x}", u.row.hash()),
            other => panic!("{other:?}"),
        };
        at.set_key_cells.insert(8, unkeyed);
        // Row 9 was read holding something else than the locator's fingerprint.
        at.set_key_cells
            .insert(9, vec![json!(""), json!(3), json!("edited")]);
        let ops = [
            WriteOp::Delete {
                key: key.clone(),
                expected: Expected::Any,
            },
            WriteOp::SetKey {
                locator: format!("8:{fp}"),
                row: row(40, "typed", 2),
            },
            WriteOp::SetKey {
                locator: format!("9:{fp}"),
                row: row(41, "typed", 2),
            },
            WriteOp::SetKey {
                locator: "no row".into(),
                row: row(42, "typed", 2),
            },
        ];
        let plan = t.plan_writes(&l, &ops, &at);
        assert_eq!(plan.outcomes[..3], [None, None, Some(WriteOutcome::Stale)]);
        assert!(
            matches!(&plan.outcomes[3], Some(WriteOutcome::Held(r)) if r.contains("bad locator"))
        );
        assert_eq!(
            plan.targets,
            vec![
                Target {
                    op: 0,
                    row: 5,
                    expect: Expect::Key(key),
                    action: Action::Delete,
                },
                Target {
                    op: 1,
                    row: 8,
                    expect: Expect::Fingerprint(fp),
                    action: Action::Cells(vec![(0, json!(40))]),
                },
            ]
        );
    }
}
