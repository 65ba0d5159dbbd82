//! Acceptance 5: restarting the bridge at any moment never loses or duplicates a reply.
