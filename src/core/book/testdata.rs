//! Kraken's book-checksum test vectors (shared/kraken/book-checksum.md), one copy for every
//! test and bench that needs them: `core::book`'s checksum tests feed them to an [`L2Book`]
//! directly, the decoder's tests (`core::kraken::decode`) wrap them in v2 and v1 frames, and
//! `benches/decode.rs` streams vector E. Constants only (hidden from the docs); it lives under `book` so the decoder's tests import it along the edge kraken → book that
//! already exists (no cycle between the two).
//!
//! Levels are `(price, qty)` exactly as Kraken prints them (the checksum of a v1 book, or of
//! a v2 book without its instrument's precisions, is taken over these strings).
//!
//! [`L2Book`]: crate::core::book::L2Book

/// `(price, qty)` levels as printed.
pub type Lv = &'static [(&'static str, &'static str)];

/// Vector A (Kraken's v2 guide, BTC/USD, precisions 1 / 8): asks, best first.
pub const A_ASKS: Lv = &[
    ("45285.2", "0.00100000"),
    ("45286.4", "1.54571953"),
    ("45286.6", "1.54571109"),
    ("45289.6", "1.54560911"),
    ("45290.2", "0.15890660"),
    ("45291.8", "1.54553491"),
    ("45294.7", "0.04454749"),
    ("45296.1", "0.35380000"),
    ("45297.5", "0.09945542"),
    ("45299.5", "0.18772827"),
];
/// Vector A: bids, best first.
pub const A_BIDS: Lv = &[
    ("45283.5", "0.10000000"),
    ("45283.4", "1.54582015"),
    ("45282.1", "0.10000000"),
    ("45281.0", "0.10000000"),
    ("45280.3", "1.54592586"),
    ("45279.0", "0.07990000"),
    ("45277.6", "0.03310103"),
    ("45277.5", "0.30000000"),
    ("45277.3", "1.54602737"),
    ("45276.6", "0.15445238"),
];
/// Vector A's checksum.
pub const A_CHECKSUM: u32 = 3_310_070_434;

/// Vector B (MATIC/USD, precisions 4 / 8: the printed literals need padding): bids.
pub const B_BIDS: Lv = &[
    ("0.5666", "4831.75496356"),
    ("0.5665", "6658.22734739"),
    ("0.5664", "18724.91513344"),
    ("0.5663", "11563.92544914"),
    ("0.5662", "14006.65365711"),
    ("0.5661", "17454.85679807"),
    ("0.566", "18097.1547"),
    ("0.5659", "33644.89175666"),
    ("0.5658", "148.3464"),
    ("0.5657", "606.70854372"),
];
/// Vector B: asks.
pub const B_ASKS: Lv = &[
    ("0.5668", "4410.79769741"),
    ("0.5669", "4655.40412487"),
    ("0.567", "49844.89424998"),
    ("0.5671", "24306.41678"),
    ("0.5672", "29783.25223475"),
    ("0.5673", "57234.71239278"),
    ("0.5674", "45065.04744"),
    ("0.5675", "5912.76380354"),
    ("0.5676", "42514.92434778"),
    ("0.5677", "36304.0847022"),
];
/// Vector B's checksum, digits padded to the instrument's precisions.
pub const B_CHECKSUM: u32 = 2_439_117_997;
/// Vector B's checksum over the printed literals (what a decoder without the instrument gets).
pub const B_UNPADDED_CHECKSUM: u32 = 3_830_085_102;
/// Vector C: the bid update applied on top of B.
pub const C_BID: (&str, &str) = ("0.5657", "1098.3947558");
/// Vector C's checksum.
pub const C_CHECKSUM: u32 = 2_114_181_697;

/// Vector D (Kraken's v1 guide): ask prices, best first; every level's volume is [`D_QTY`].
pub const D_ASK_PRICES: [&str; 10] = [
    "0.05005", "0.05010", "0.05015", "0.05020", "0.05025", "0.05030", "0.05035", "0.05040", "0.05045",
    "0.05050",
];
/// Vector D: bid prices, best first.
pub const D_BID_PRICES: [&str; 10] = [
    "0.05000", "0.04995", "0.04990", "0.04980", "0.04975", "0.04970", "0.04965", "0.04960", "0.04955",
    "0.04950",
];
/// Vector D: every level's volume.
pub const D_QTY: &str = "0.00000500";
/// Vector D's checksum (over the strings as sent).
pub const D_CHECKSUM: u32 = 974_947_235;

/// Vector E (BTC/USD, depth 10, precisions 1 / 8): snapshot bids.
pub const E_BIDS: Lv = &[
    ("29430.2", "0.18967538"),
    ("29429.6", "0.00011621"),
    ("29427.4", "0.001"),
    ("29426.7", "4.0"),
    ("29425.7", "0.67945399"),
    ("29423.5", "0.67950478"),
    ("29422.1", "0.16314267"),
    ("29421.8", "0.06797895"),
    ("29421.7", "0.23401846"),
    ("29421.5", "0.28639276"),
];
/// Vector E: snapshot asks.
pub const E_ASKS: Lv = &[
    ("29430.3", "8.25215653"),
    ("29430.4", "2.55637606"),
    ("29430.5", "0.2997598"),
    ("29430.9", "2.56473216"),
    ("29431.0", "0.00011662"),
    ("29431.1", "0.001"),
    ("29432.3", "0.0241"),
    ("29432.4", "0.02210682"),
    ("29432.5", "3.39761477"),
    ("29433.1", "0.01021497"),
];
/// Vector E's snapshot checksum.
pub const E_SNAPSHOT_CHECKSUM: u32 = 2_785_033_588;
/// Vector E's update (asks, wire order: a delete, then two inserts; 11 asks cut to 10).
pub const E_UPDATE_ASKS: Lv = &[("29431.1", "0.0"), ("29433.3", "0.8"), ("29430.6", "0.001")];
/// Vector E's checksum after the update and the cut to depth.
pub const E_UPDATE_CHECKSUM: u32 = 3_547_452_596;

/// Vector F (a real v1 XMR/USD book-1000): asks, best first.
pub const F_ASKS: Lv = &[
    ("354.80000000", "1.40000000"),
    ("354.84000000", "6.88212752"),
    ("354.85000000", "11.76000000"),
    ("355.02000000", "7.57500000"),
    ("355.03000000", "15.09600000"),
    ("355.22000000", "22.72500000"),
    ("355.23000000", "5.00000000"),
    ("355.28000000", "167.09600000"),
    ("355.34000000", "7.04284869"),
    ("355.44000000", "136.38890000"),
];
/// Vector F: bids, best first (the second, 354.15, is the one its update adds).
pub const F_BIDS: Lv = &[
    ("354.16000000", "1.40000000"),
    ("354.15000000", "5.00000000"),
    ("354.14000000", "30.30000000"),
    ("354.13000000", "5.00000000"),
    ("354.12000000", "7.57500000"),
    ("354.11000000", "22.72500000"),
    ("354.08000000", "0.17106559"),
    ("354.04000000", "0.28245396"),
    ("353.94000000", "15.27000000"),
    ("353.92000000", "2.82900000"),
];
/// Vector F's checksum.
pub const F_CHECKSUM: u32 = 2_583_817_756;
