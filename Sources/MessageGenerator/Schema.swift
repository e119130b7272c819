import Foundation

/// A version range from a schema: "3+", "0-7", "5", or "none".
struct VersionRange: Equatable {
    var lower: Int
    var upper: Int?   // nil: open-ended
    var isNone: Bool { lower > (upper ?? Int.max) }

    static let none = VersionRange(lower: 1, upper: 0)
    static let all = VersionRange(lower: 0, upper: nil)

    init(lower: Int, upper: Int?) { self.lower = lower; self.upper = upper }

    init(_ text: String) throws {
        let t = text.trimmingCharacters(in: .whitespaces)
        if t == "none" { self = .none; return }
        if t.hasSuffix("+"), let low = Int(t.dropLast()) { self.init(lower: low, upper: nil); return }
        let parts = t.split(separator: "-")
        if parts.count == 2, let low = Int(parts[0]), let high = Int(parts[1]) { self.init(lower: low, upper: high); return }
        if let single = Int(t) { self.init(lower: single, upper: single); return }
        throw GeneratorError("bad version range '\(text)'")
    }

    /// Intersection with the message's valid versions.
    func clamped(to valid: VersionRange) -> VersionRange {
        if isNone || valid.isNone { return .none }
        let low = max(lower, valid.lower)
        let high: Int? = switch (upper, valid.upper) {
        case (nil, nil): nil
        case (let a?, nil): a
        case (nil, let b?): b
        case (let a?, let b?): min(a, b)
        }
        if let high, high < low { return .none }
        return VersionRange(lower: low, upper: high)
    }

    func contains(_ other: VersionRange) -> Bool {
        if other.isNone { return true }
        if isNone { return false }
        guard other.lower >= lower else { return false }
        switch (upper, other.upper) {
        case (nil, _): return true
        case (_, nil): return false
        case (let a?, let b?): return b <= a
        }
    }

    /// A Swift condition on `version` that is true inside this range, given that `version` is
    /// already known to lie in `valid`. Returns nil when always true; "false" when never.
    func condition(within valid: VersionRange) -> String? {
        let r = clamped(to: valid)
        if r.isNone { return "false" }
        var parts: [String] = []
        if r.lower > valid.lower { parts.append("version >= \(r.lower)") }
        if let high = r.upper, high < (valid.upper ?? Int.max) { parts.append("version <= \(high)") }
        return parts.isEmpty ? nil : parts.joined(separator: " && ")
    }
}

struct GeneratorError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// One field of a schema struct.
struct FieldSpec {
    var name: String
    var type: String              // "int32", "[]string", "[]TopicData", "TopicData", ...
    var versions: VersionRange
    var nullableVersions: VersionRange
    var taggedVersions: VersionRange
    var tag: Int?
    var defaultValue: String?
    var flexibleOverride: VersionRange?   // only "none" occurs: never use compact encoding
    var fields: [FieldSpec]        // for struct and struct-array types defined inline

    var isArray: Bool { type.hasPrefix("[]") }
    var elementType: String { isArray ? String(type.dropFirst(2)) : type }
    var isPrimitiveElement: Bool { Self.primitives.contains(elementType) }
    var isStructElement: Bool { !isPrimitiveElement }
    var isTagged: Bool { tag != nil }

    static let primitives: Set<String> = ["bool", "int8", "int16", "int32", "int64", "uint16", "uint32", "float64",
                                          "string", "bytes", "records", "uuid"]

    init(json: [String: Any]) throws {
        guard let name = json["name"] as? String, let type = json["type"] as? String else {
            throw GeneratorError("field without name or type: \(json)")
        }
        self.name = name
        self.type = type
        versions = try VersionRange(json["versions"] as? String ?? "0+")
        nullableVersions = try (json["nullableVersions"] as? String).map(VersionRange.init) ?? .none
        taggedVersions = try (json["taggedVersions"] as? String).map(VersionRange.init) ?? .none
        tag = json["tag"] as? Int
        if let d = json["default"] {
            defaultValue = (d as? String) ?? "\(d)"
        }
        flexibleOverride = try (json["flexibleVersions"] as? String).map(VersionRange.init)
        fields = try (json["fields"] as? [[String: Any]] ?? []).map(FieldSpec.init(json:))
    }
}

/// A named struct type: the message itself, an inline struct, or a common struct.
struct StructSpec {
    var name: String
    var fields: [FieldSpec]
}

/// One schema file.
struct MessageSpec {
    var name: String
    var kind: String            // request, response, header, data, metadata
    var apiKey: Int?
    var validVersions: VersionRange
    var flexibleVersions: VersionRange
    var fields: [FieldSpec]
    var commonStructs: [StructSpec]
    var latestVersionUnstable: Bool

    init(jsonText: String) throws {
        // Schema files carry whole-line // comments; JSON has none.
        let stripped = jsonText.split(separator: "\n", omittingEmptySubsequences: false)
            .filter { !$0.trimmingCharacters(in: .whitespaces).hasPrefix("//") }
            .joined(separator: "\n")
        guard let json = try JSONSerialization.jsonObject(with: Data(stripped.utf8)) as? [String: Any],
              let name = json["name"] as? String, let kind = json["type"] as? String
        else { throw GeneratorError("not a message schema") }
        self.name = name
        self.kind = kind
        apiKey = json["apiKey"] as? Int
        validVersions = try VersionRange(json["validVersions"] as? String ?? "0")
        flexibleVersions = try VersionRange(json["flexibleVersions"] as? String ?? "none")
        fields = try (json["fields"] as? [[String: Any]] ?? []).map(FieldSpec.init(json:))
        commonStructs = try (json["commonStructs"] as? [[String: Any]] ?? []).map { s in
            guard let n = s["name"] as? String else { throw GeneratorError("common struct without a name") }
            return StructSpec(name: n, fields: try (s["fields"] as? [[String: Any]] ?? []).map(FieldSpec.init(json:)))
        }
        latestVersionUnstable = json["latestVersionUnstable"] as? Bool ?? false
    }
}
