//! A sparse cell store: only rows that hold something are allocated, and each row is dense
//! only up to its last used column. Empty sheets of any size cost nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::cell::Cell;

/// Sparse grid of cells keyed by zero-based row.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Grid {
    rows: BTreeMap<u32, Vec<Cell>>,
}

impl Grid {
    /// Cell at (row, col), if anything is stored there.
    pub fn get(&self, row: u32, col: u32) -> Option<&Cell> {
        self.rows.get(&row).and_then(|r| r.get(col as usize))
    }

    /// The stored part of a row.
    pub fn row(&self, row: u32) -> Option<&[Cell]> {
        self.rows.get(&row).map(|v| v.as_slice())
    }

    /// Mutable access to a cell, allocating it.
    pub fn get_mut(&mut self, row: u32, col: u32) -> &mut Cell {
        let r = self.rows.entry(row).or_default();
        let c = col as usize;
        if r.len() <= c {
            r.resize_with(c + 1, Cell::default);
        }
        &mut r[c]
    }

    /// Replaces a cell (a blank cell removes it).
    pub fn set(&mut self, row: u32, col: u32, cell: Cell) {
        if cell.is_blank() {
            if self.get(row, col).is_some() {
                *self.get_mut(row, col) = cell;
                self.compact_row(row);
            }
        } else {
            *self.get_mut(row, col) = cell;
        }
    }

    /// Drops trailing blank cells of a row and the row itself when nothing is left.
    pub fn compact_row(&mut self, row: u32) {
        if let Some(r) = self.rows.get_mut(&row) {
            while r.last().is_some_and(Cell::is_blank) {
                r.pop();
            }
            if r.is_empty() {
                self.rows.remove(&row);
            }
        }
    }

    /// Iterates stored rows within `[r0, r1)`.
    pub fn rows_in(&self, r0: u32, r1: u32) -> impl DoubleEndedIterator<Item = (u32, &Vec<Cell>)> {
        self.rows.range(r0..r1.max(r0)).map(|(k, v)| (*k, v))
    }

    /// All stored rows.
    pub fn all_rows(&self) -> impl Iterator<Item = (u32, &Vec<Cell>)> {
        self.rows.iter().map(|(k, v)| (*k, v))
    }

    /// Index of the last row holding a value, if any.
    pub fn last_value_row(&self) -> Option<u32> {
        self.rows
            .iter()
            .rev()
            .find(|(_, r)| r.iter().any(Cell::has_value))
            .map(|(k, _)| *k)
    }

    /// Inserts `n` empty rows before `at`.
    pub fn insert_rows(&mut self, at: u32, n: u32) {
        let tail = self.rows.split_off(&at);
        for (k, v) in tail {
            self.rows.insert(k + n, v);
        }
    }

    /// Deletes rows `[at, at + n)`, shifting later rows up.
    pub fn delete_rows(&mut self, at: u32, n: u32) {
        let mut tail = self.rows.split_off(&at);
        let keep = tail.split_off(&(at + n));
        for (k, v) in keep {
            self.rows.insert(k - n, v);
        }
    }

    /// Inserts `n` empty columns before `at`.
    pub fn insert_cols(&mut self, at: u32, n: u32) {
        for r in self.rows.values_mut() {
            if r.len() > at as usize {
                let tail: Vec<Cell> = r.drain(at as usize..).collect();
                r.resize_with(at as usize + n as usize, Cell::default);
                r.extend(tail);
            }
        }
    }

    /// Deletes columns `[at, at + n)`.
    pub fn delete_cols(&mut self, at: u32, n: u32) {
        let keys: Vec<u32> = self.rows.keys().copied().collect();
        for k in keys {
            if let Some(r) = self.rows.get_mut(&k) {
                let a = (at as usize).min(r.len());
                let b = ((at + n) as usize).min(r.len());
                r.drain(a..b);
            }
            self.compact_row(k);
        }
    }

    /// Removes every row at or after `rows` and every column at or after `cols` (grid shrink).
    pub fn truncate(&mut self, rows: u32, cols: u32) {
        self.rows.split_off(&rows);
        let keys: Vec<u32> = self.rows.keys().copied().collect();
        for k in keys {
            if let Some(r) = self.rows.get_mut(&k) {
                r.truncate(cols as usize);
            }
            self.compact_row(k);
        }
    }

    /// Takes rows `[r0, r1)` out of the grid (they become empty), returning them re-based to 0.
    pub fn take_rows(&mut self, r0: u32, r1: u32) -> BTreeMap<u32, Vec<Cell>> {
        let mut mid = self.rows.split_off(&r0);
        let mut tail = mid.split_off(&r1);
        self.rows.append(&mut tail);
        mid.into_iter().map(|(k, v)| (k - r0, v)).collect()
    }

    /// Puts rows taken by [`Grid::take_rows`] back starting at `at` (replacing what is there).
    pub fn put_rows(&mut self, at: u32, rows: BTreeMap<u32, Vec<Cell>>) {
        for (k, v) in rows {
            self.rows.insert(k + at, v);
        }
    }

    /// Every stored cell, mutably, with its coordinates.
    pub fn cells_mut(&mut self) -> impl Iterator<Item = (u32, u32, &mut Cell)> {
        self.rows.iter_mut().flat_map(|(r, row)| {
            row.iter_mut()
                .enumerate()
                .map(move |(c, cell)| (*r, c as u32, cell))
        })
    }

    /// Number of stored cells (for diagnostics).
    pub fn stored_cells(&self) -> usize {
        self.rows.values().map(Vec::len).sum()
    }
}
