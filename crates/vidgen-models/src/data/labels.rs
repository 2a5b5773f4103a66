//! The labels of the moving-shapes data: shapes, colours, directions, the label text and the
//! tokenizer over its vocabulary.

use crate::text::WordTokenizer;

/// Shapes drawn by [`MovingShapes`](crate::data::MovingShapes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// An axis-aligned square of side `shape_size`.
    Square,
    /// A disc of diameter `shape_size`.
    Circle,
}

/// Colours of the shapes: one RGB channel at `+1`, the others at `-1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colour {
    /// Channel 0.
    Red,
    /// Channel 1.
    Green,
    /// Channel 2.
    Blue,
}

/// Directions of motion (image coordinates: `up` is towards row 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Towards column 0.
    Left,
    /// Towards the last column.
    Right,
    /// Towards row 0.
    Up,
    /// Towards the last row.
    Down,
}

impl Shape {
    /// Every shape, in label order.
    pub const ALL: [Shape; 2] = [Shape::Square, Shape::Circle];
    /// The word used in labels.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Square => "square",
            Shape::Circle => "circle",
        }
    }
}

impl Colour {
    /// Every colour, in label order.
    pub const ALL: [Colour; 3] = [Colour::Red, Colour::Green, Colour::Blue];
    /// The word used in labels.
    pub fn name(self) -> &'static str {
        ["red", "green", "blue"][self.channel()]
    }
    /// The RGB channel at `+1`.
    pub fn channel(self) -> usize {
        match self {
            Colour::Red => 0,
            Colour::Green => 1,
            Colour::Blue => 2,
        }
    }
}

impl Direction {
    /// Every direction, in label order.
    pub const ALL: [Direction; 4] = [
        Direction::Right,
        Direction::Left,
        Direction::Up,
        Direction::Down,
    ];
    /// The word used in labels.
    pub fn name(self) -> &'static str {
        match self {
            Direction::Left => "left",
            Direction::Right => "right",
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }
    /// Unit displacement `(dx, dy)` per frame in image coordinates (x: column, y: row).
    pub fn unit(self) -> (f64, f64) {
        match self {
            Direction::Left => (-1.0, 0.0),
            Direction::Right => (1.0, 0.0),
            Direction::Up => (0.0, -1.0),
            Direction::Down => (0.0, 1.0),
        }
    }
}

/// The label `"<colour> <shape> moving <direction>"`.
pub fn label(colour: Colour, shape: Shape, direction: Direction) -> String {
    format!(
        "{} {} moving {}",
        colour.name(),
        shape.name(),
        direction.name()
    )
}

/// Every word of the labels, the vocabulary of [`tokenizer`].
pub const VOCAB: [&str; 10] = [
    "red", "green", "blue", "square", "circle", "moving", "left", "right", "up", "down",
];

/// The word tokenizer for the labels (4 tokens per label).
pub fn tokenizer() -> WordTokenizer {
    WordTokenizer::new(&VOCAB, 4).expect("non-empty vocabulary, max_len 4")
}
