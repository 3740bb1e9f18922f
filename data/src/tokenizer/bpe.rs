//! Applying BPE merges to one pre-token, and the per-thread encoder state.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rustc_hash::FxHashMap;

/// What merging a pair produces: the merge's priority and the new token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Merge {
    pub rank: u32,
    pub id: u32,
}

pub(crate) type MergeMap = FxHashMap<(u32, u32), Merge>;

/// No symbol: one merged away, or a byte the vocabulary lacks.
pub(crate) const NONE: u32 = u32::MAX;

/// Reusable buffers for [`merge_symbols`], so encoding allocates nothing
/// per pre-token once warm.
#[derive(Default)]
pub(crate) struct Scratch {
    next: Vec<u32>,
    prev: Vec<u32>,
    /// (rank, position, left id, right id): lowest rank first, and among
    /// equal ranks (the same pair twice) the leftmost, as GPT-2 merges.
    heap: BinaryHeap<Reverse<(u32, u32, u32, u32)>>,
}

/// Merges `symbols` in place by rank until no mergeable pair is left.
///
/// Symbols form a linked list over their starting positions; a heap holds
/// candidate pairs. Entries made stale by an earlier merge are recognised
/// on pop (a symbol gone, or a neighbour changed) and dropped, so each
/// merge costs O(log n) instead of a rescan of the word.
pub(crate) fn merge_symbols(symbols: &mut Vec<u32>, merges: &MergeMap, s: &mut Scratch) {
    let n = symbols.len();
    if n < 2 {
        return;
    }
    s.next.clear();
    s.next.extend((1..=n as u32).map(|i| if i as usize == n { NONE } else { i }));
    s.prev.clear();
    s.prev.extend((0..n as u32).map(|i| if i == 0 { NONE } else { i - 1 }));
    s.heap.clear();
    for i in 0..n - 1 {
        push_pair(symbols, merges, s, i as u32, (i + 1) as u32);
    }
    while let Some(Reverse((_, pos, left, right))) = s.heap.pop() {
        let next = s.next[pos as usize];
        if symbols[pos as usize] != left || next == NONE || symbols[next as usize] != right {
            continue;
        }
        symbols[pos as usize] = merges[&(left, right)].id;
        // Unlink `next`; a dead symbol keeps NONE as its id so stale heap
        // entries pointing at it fail the check above.
        let after = s.next[next as usize];
        s.next[pos as usize] = after;
        if after != NONE {
            s.prev[after as usize] = pos;
        }
        symbols[next as usize] = NONE;
        let before = s.prev[pos as usize];
        if before != NONE {
            push_pair(symbols, merges, s, before, pos);
        }
        if after != NONE {
            push_pair(symbols, merges, s, pos, after);
        }
    }
    symbols.retain(|&id| id != NONE);
}

fn push_pair(symbols: &[u32], merges: &MergeMap, s: &mut Scratch, a: u32, b: u32) {
    let (left, right) = (symbols[a as usize], symbols[b as usize]);
    if let Some(m) = merges.get(&(left, right)) {
        s.heap.push(Reverse((m.rank, a, left, right)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_lowest_rank_first_and_leftmost_on_ties() {
        // Symbols: a=0, b=1; merges: (a,a)->2 rank 0, (2,b)->3 rank 1.
        let mut merges = MergeMap::default();
        merges.insert((0, 0), Merge { rank: 0, id: 2 });
        merges.insert((2, 1), Merge { rank: 1, id: 3 });
        let mut s = Scratch::default();
        // "aaab": the leftmost (a,a) merges, leaving "aa","a","b".
        let mut w = vec![0, 0, 0, 1];
        merge_symbols(&mut w, &merges, &mut s);
        assert_eq!(w, vec![2, 0, 1]);
        let mut w = vec![0, 0, 1, 0, 0];
        merge_symbols(&mut w, &merges, &mut s);
        assert_eq!(w, vec![3, 2]);
    }
}
