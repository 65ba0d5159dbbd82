//! The receiver refuses what is not a genuine, fresh event of our portal.
