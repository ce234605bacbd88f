import Testing

@Test func placeholder_AdminCommandsTests() { #expect(Bool(true)) }
