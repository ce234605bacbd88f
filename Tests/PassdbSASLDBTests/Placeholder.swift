import Testing

@Test func placeholder_sasldb() { #expect(Bool(true)) }
