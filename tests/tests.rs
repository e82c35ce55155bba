
mod states;
