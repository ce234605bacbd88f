import Testing

@Test func placeholder_pam() { #expect(Bool(true)) }
