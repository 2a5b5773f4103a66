//! The labels of the moving-shapes data: shapes, colours, directions, the label text and the
//! tokenizer over its vocabulary.

use crate::text::WordTokenizer;
use serde::{Deserialize, Serialize};

/// Shapes drawn by [`MovingShapes`](crate::data::MovingShapes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// An axis-aligned square of side `shape_size`.
    Square,
    /// A disc of diameter `shape_size`.
    Circle,
}

/// Colours of the shapes: their RGB channels at `+1`, the others at `-1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Colour {
    /// Channel 0.
    Red,
    /// Channel 1.
    Green,
    /// Channel 2.
    Blue,
    /// Channels 0 and 1. Not one of the base colours ([`Colour::ALL`], [`VOCAB`]): the new word
    /// a trained model learns by fine-tuning (`assets/tiny_stdit_yellow.json`).
    Yellow,
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
    /// The base colours of the dataset and of [`VOCAB`], in label order.
    pub const ALL: [Colour; 3] = [Colour::Red, Colour::Green, Colour::Blue];
    /// The word used in labels.
    pub fn name(self) -> &'static str {
        match self {
            Colour::Red => "red",
            Colour::Green => "green",
            Colour::Blue => "blue",
            Colour::Yellow => "yellow",
        }
    }
    /// Which RGB channels are at `+1` (the others are at `-1`).
    pub fn channels(self) -> [bool; 3] {
        match self {
            Colour::Red => [true, false, false],
            Colour::Green => [false, true, false],
            Colour::Blue => [false, false, true],
            Colour::Yellow => [true, true, false],
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

/// The word tokenizer for the labels of the base colours (4 tokens per label).
pub fn tokenizer() -> WordTokenizer {
    tokenizer_for(&Colour::ALL)
}

/// The word tokenizer for labels over `colours`: [`VOCAB`] followed by the names of the colours
/// outside it, in order ([`new_words`]), so every word of `VOCAB` keeps its id.
pub fn tokenizer_for(colours: &[Colour]) -> WordTokenizer {
    let mut words: Vec<&str> = VOCAB.to_vec();
    words.extend(new_words(colours));
    WordTokenizer::new(&words, 4).expect("non-empty vocabulary, max_len 4")
}

/// The names of `colours` outside [`VOCAB`], each once, in order: the words a model trained on
/// the base labels has no embedding for.
pub fn new_words(colours: &[Colour]) -> Vec<&'static str> {
    let mut words: Vec<&'static str> = Vec::new();
    for colour in colours {
        let name = colour.name();
        if !VOCAB.contains(&name) && !words.contains(&name) {
            words.push(name);
        }
    }
    words
}
