import AMQP
import Foundation
import Logging
import Messaging
import Persistence
import PostgresNIO
import Testing

@testable import Inventory

/// Sent outbox rows are deleted by their place and their id together (`OutboxRowID`), against the real database.
@Suite(.serialized, .enabled(if: TestEnvironment.available, "needs the servers that scripts/test starts"))
struct OutboxDeletionTests {
    let logger = TestEnvironment.logger

    @Test func aSentRowIsDeletedByItsPlaceAndIdAndAStalePlaceDeletesNothing() async throws {
        try await TestEnvironment.withDatabase(
            TestEnvironment.database("inventory", passwordVariable: "PETS_PW_INVENTORY"),
            migrations: InventorySchema.migrations
        ) { client in
            let messages = try (0..<3).map {
                try OutgoingMessage.make(routingKey: "test.nowhere", type: "test.outbox", body: ["n": $0])
            }
            let entries = try await client.withConnection { connection in
                try await Outbox.enqueue(messages, on: connection, logger: logger)
            }
            try #require(entries.count == 3)
            let ids = entries.map(\.row.id)
            // Row 0's id at row 1's place (as if row 0 had moved there), and an unknown id at row 1's place: neither
            // may delete anything. Row 2, as written: deleted.
            let stale = [
                OutboxRowID(id: ids[0], tid: entries[1].row.tid), OutboxRowID(id: -1, tid: entries[1].row.tid),
            ]
            let claim = InboxClaim(
                messageID: "test-\(UUID().uuidString)", type: "test.outbox", deleting: stale + [entries[2].row])
            let written = try await client.withConnection { connection in
                try await Outbox.enqueue([], claiming: claim, on: connection, logger: logger)
            }
            #expect(written.isEmpty)
            var left: [Int64] = []
            for try await id in try await client.query(
                "SELECT id FROM outbox WHERE id = ANY(\(ids)) ORDER BY id", logger: logger
            ).decode(Int64.self) {
                left.append(id)
            }
            try await client.query("DELETE FROM outbox WHERE id = ANY(\(ids))", logger: logger)
            #expect(left == [ids[0], ids[1]], "only the row named by both its place and its id is gone")
        }
    }
}
