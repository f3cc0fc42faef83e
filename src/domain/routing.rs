//! Routing: which supplier gets which units. A pure function of the order's lines
//! and each SKU's candidate suppliers, so it is tested without any I/O.

use std::collections::HashMap;

use super::order::Want;

/// A supplier that could take units of one SKU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub supplier: String,
    pub supplier_sku: String,
    pub priority: u32,
    /// Units it has that are not yet allocated.
    pub unallocated: u32,
}

/// Units of one SKU given to one supplier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    pub supplier: String,
    pub sku: String,
    pub supplier_sku: String,
    pub qty: u32,
}

/// The outcome: what goes where, and what nobody could take.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routing {
    pub allocations: Vec<Allocation>,
    pub unplaced: Vec<(String, u32)>,
}

/// Routes each line to the candidates of its SKU, lowest priority first (ties by
/// supplier id, so routing is deterministic), spilling a line over several
/// suppliers where one cannot cover it. Units taken by an earlier line of the same
/// order are not offered again.
pub fn route(lines: &[Want<'_>], candidates_of: impl Fn(&str) -> Vec<Candidate>) -> Routing {
    let mut taken: HashMap<(String, String), u32> = HashMap::new();
    let mut routing = Routing::default();
    for line in lines {
        let mut candidates = candidates_of(line.sku);
        candidates.sort_by(|a, b| (a.priority, &a.supplier).cmp(&(b.priority, &b.supplier)));
        let mut left = line.qty;
        for c in candidates {
            if left == 0 {
                break;
            }
            let used = taken
                .entry((c.supplier.clone(), line.sku.to_owned()))
                .or_default();
            let qty = c.unallocated.saturating_sub(*used).min(left);
            if qty == 0 {
                continue;
            }
            *used += qty;
            left -= qty;
            routing.allocations.push(Allocation {
                supplier: c.supplier,
                sku: line.sku.to_owned(),
                supplier_sku: c.supplier_sku,
                qty,
            });
        }
        if left > 0 {
            routing.unplaced.push((line.sku.to_owned(), left));
        }
    }
    routing
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(supplier: &str, priority: u32, unallocated: u32) -> Candidate {
        Candidate {
            supplier: supplier.into(),
            supplier_sku: format!("{supplier}-code"),
            priority,
            unallocated,
        }
    }

    #[test]
    fn lowest_priority_first_and_spill_over() {
        let lines = [Want { sku: "a", qty: 5 }];
        let r = route(&lines, |_| vec![cand("late", 20, 10), cand("early", 10, 3)]);
        let got: Vec<(&str, u32)> = r
            .allocations
            .iter()
            .map(|a| (a.supplier.as_str(), a.qty))
            .collect();
        assert_eq!(got, vec![("early", 3), ("late", 2)]);
        assert!(r.unplaced.is_empty());
    }

    #[test]
    fn repeated_sku_lines_do_not_double_count_stock() {
        let lines = [Want { sku: "a", qty: 2 }, Want { sku: "a", qty: 2 }];
        let r = route(&lines, |_| vec![cand("s", 1, 3)]);
        assert_eq!(r.allocations.iter().map(|a| a.qty).sum::<u32>(), 3);
        assert_eq!(r.unplaced, vec![("a".to_owned(), 1)]);
    }

    #[test]
    fn nothing_to_route_to_is_unplaced() {
        let lines = [Want { sku: "a", qty: 1 }, Want { sku: "b", qty: 4 }];
        let r = route(&lines, |sku| {
            if sku == "a" {
                vec![cand("s", 1, 1)]
            } else {
                vec![]
            }
        });
        assert_eq!(r.allocations.len(), 1);
        assert_eq!(r.unplaced, vec![("b".to_owned(), 4)]);
    }
}
