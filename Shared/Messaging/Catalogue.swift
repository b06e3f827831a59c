/// The seed's eight pets: ids and prices exactly as the original shop has them.
public struct CatalogueProduct: Sendable, Equatable {
    public var id: String
    public var title: String
    public var unitPriceCents: Int
    public var imageUrl: String

    public init(id: String, title: String, unitPriceCents: Int, imageUrl: String) {
        self.id = id
        self.title = title
        self.unitPriceCents = unitPriceCents
        self.imageUrl = imageUrl
    }
}

public enum SeedCatalogue {
    public static let products: [CatalogueProduct] = [
        .init(
            id: "9305f481-8399-43de-9912-fd3d2b9f1069", title: "Cat", unitPriceCents: 15_000,
            imageUrl: "/images/cat.svg"),
        .init(
            id: "417e0721-4317-41a6-bb57-54646ace9a0b", title: "Dog", unitPriceCents: 20_000,
            imageUrl: "/images/dog.svg"),
        .init(
            id: "81ad9dae-3f63-4e64-baac-a984dfc2fb28", title: "Bird", unitPriceCents: 3_000,
            imageUrl: "/images/bird.svg"),
        .init(
            id: "c7ced823-9d1b-4c36-8087-0b15208c94f7", title: "Fish", unitPriceCents: 1_000,
            imageUrl: "/images/fish.svg"),
        .init(
            id: "1212b901-05c3-486e-af51-de54054604f8", title: "Rabbit", unitPriceCents: 5_000,
            imageUrl: "/images/rabbit.svg"),
        .init(
            id: "0d1b5d4d-1206-4462-842f-130a9545a08f", title: "Hamster", unitPriceCents: 3_000,
            imageUrl: "/images/hamster.svg"),
        .init(
            id: "c2429581-7fd0-4ee5-b5c9-02a42be68db0", title: "Pony", unitPriceCents: 300_000,
            imageUrl: "/images/pony.svg"),
        .init(
            id: "3aad800f-44e2-445b-9bec-cbb7f0b14bef", title: "Chicken", unitPriceCents: 2_000,
            imageUrl: "/images/chicken.svg"),
    ]
}

/// Money travels as whole cents; JSON shows it in dollars.
public enum Money {
    public static func dollars(_ cents: Int) -> Double { Double(cents) / 100 }
}
