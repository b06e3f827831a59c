import Foundation
import Messaging

/// The body of `POST /orders`, as the seed's shop sends it. Everything optional, so a missing field gets the
/// seed's message rather than a decoding error.
struct PlaceOrderBody: Decodable {
    struct Line: Decodable {
        var id: String?
        var title: String?
        /// A number, so that `1.5` gets a clear message rather than a decoding error.
        var quantity: Double?
    }
    struct Address: Decodable {
        var address: String?
        var city: String?
        var postCode: String?
    }
    struct Payment: Decodable {
        var cardNumber: String?
        var cardholderName: String?
        var expiry: String?
        var ccv: String?
    }
    var basket: [Line]?
    var shippingAddress: Address?
    var paymentDetail: Payment?
}

/// A request that passed validation, with prices taken from the catalogue.
struct ValidOrder: Codable, Sendable, Equatable {
    var lines: [OrderLine]
    var address: String
    var city: String
    var postCode: String
    var card: CardSummary

    var itemsCents: Int { lines.reduce(0) { $0 + $1.unitPriceCents * $1.quantity } }
}

/// Why a request was refused; `message` is what the client sees.
struct OrderValidationError: Error, Equatable {
    var message: String
}

enum OrderValidation {
    static let maximumQuantity = 1_000
    static let maximumLines = 100

    /// Checks the body and prices it from `catalogue` (product id -> product). Quantities above the seed's limit of
    /// 10 pass here: the saga refuses them with the seed's message.
    static func validate(_ body: PlaceOrderBody, catalogue: [String: CatalogueProduct]) throws(OrderValidationError)
        -> ValidOrder
    {
        guard let basket = body.basket, !basket.isEmpty else {
            throw OrderValidationError(message: "No items in the shopping cart.")
        }
        guard basket.count <= maximumLines else {
            throw OrderValidationError(message: "Too many lines in the shopping cart (at most \(maximumLines)).")
        }
        var lines: [OrderLine] = []
        for (index, line) in basket.enumerated() {
            guard let id = line.id?.lowercased(), !id.isEmpty, id.count <= 64 else {
                throw OrderValidationError(message: "Basket line \(index + 1) has no product id.")
            }
            guard let product = catalogue[id] else {
                throw OrderValidationError(message: "Unknown product id \(id) in basket line \(index + 1).")
            }
            guard let number = line.quantity else {
                throw OrderValidationError(message: "Basket line \(index + 1) has no quantity.")
            }
            guard number >= 1, number <= Double(maximumQuantity), number.rounded() == number else {
                throw OrderValidationError(
                    message: "Quantity in basket line \(index + 1) must be a whole number from 1 to \(maximumQuantity)."
                )
            }
            let quantity = Int(number)
            lines.append(
                OrderLine(
                    productId: product.id, title: product.title, quantity: quantity,
                    unitPriceCents: product.unitPriceCents))
        }
        guard let payment = body.paymentDetail,
            let number = payment.cardNumber?.trimmed, !number.isEmpty,
            let holder = payment.cardholderName?.trimmed, !holder.isEmpty,
            let expiry = payment.expiry?.trimmed, !expiry.isEmpty,
            let ccv = payment.ccv?.trimmed, !ccv.isEmpty
        else {
            throw OrderValidationError(message: "Incomplete credit card details.")
        }
        let digits = number.filter { $0 != " " && $0 != "-" }
        guard digits.allSatisfy({ $0.isASCII && $0.isNumber }), (12...19).contains(digits.count) else {
            throw OrderValidationError(message: "Invalid card number: 12 to 19 digits expected.")
        }
        guard expiry.count == 5,
            expiry.enumerated().allSatisfy({
                $0.offset == 2 ? $0.element == "/" : ($0.element.isASCII && $0.element.isNumber)
            })
        else {
            throw OrderValidationError(message: "Invalid card expiry: MM/YY expected.")
        }
        guard (3...4).contains(ccv.count), ccv.allSatisfy({ $0.isASCII && $0.isNumber }) else {
            throw OrderValidationError(message: "Invalid CCV: 3 or 4 digits expected.")
        }
        guard let address = body.shippingAddress,
            let street = address.address?.trimmed, !street.isEmpty,
            let city = address.city?.trimmed, !city.isEmpty,
            let postCode = address.postCode?.trimmed, !postCode.isEmpty
        else {
            throw OrderValidationError(message: "Incomplete shipping address.")
        }
        guard let last = postCode.last, last.isASCII, last.isNumber else {
            throw OrderValidationError(message: "Invalid post code: it must end with a digit.")
        }
        guard street.count <= 200, city.count <= 100, postCode.count <= 20, holder.count <= 100 else {
            throw OrderValidationError(message: "Shipping address or cardholder name too long.")
        }
        for (field, text) in [("address", street), ("city", city), ("postCode", postCode), ("cardholderName", holder)]
        where text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            throw OrderValidationError(message: "Invalid \(field): control characters are not allowed.")
        }
        return ValidOrder(
            lines: lines, address: street, city: city, postCode: postCode,
            card: CardSummary(last4: String(digits.suffix(4)), expiry: expiry, cardholderName: holder))
    }
}

extension String {
    fileprivate var trimmed: String { trimmingCharacters(in: .whitespacesAndNewlines) }
}
