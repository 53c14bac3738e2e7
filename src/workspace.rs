//! The workspace on disk: reads its files and hands their text to the domain.
